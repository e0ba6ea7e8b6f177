//go:build nodev

package main

import (
	"context"
	"errors"
	"io"
)

// runDev is `worker dev` in a production build (-tags nodev: the image, make static), which
// leaves the embedded broker and Redis out.
func runDev(context.Context, []string, io.Writer, io.Writer, []string) error {
	return errors.New("worker dev is not in this build (built with -tags nodev, as the image is): run it from the source, `go run ./cmd/worker dev`")
}
