package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"time"
)

// watchFile reads path every interval and calls apply with its content whenever the content
// changed since the last successful apply (the content at start-up counts as applied). Reading
// the file rather than watching for events also follows the symlink swap of a Kubernetes Secret
// volume. A file that cannot be read, or that apply refuses, is logged once per distinct failure
// and retried at the next tick; what was applied before stays in force. It returns when ctx ends.
func watchFile(ctx context.Context, path string, interval time.Duration, log *slog.Logger, apply func([]byte) error) {
	applied := digest(path)
	var lastFailure string
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		if err == nil {
			sum := sha256.Sum256(data)
			if bytes.Equal(sum[:], applied) {
				lastFailure = ""
				continue
			}
			if err = apply(data); err == nil {
				applied = sum[:]
				lastFailure = ""
				continue
			}
		}
		if msg := err.Error(); msg != lastFailure {
			lastFailure = msg
			log.Error("reload failed; keeping the values in force", "file", path, "err", err)
		}
	}
}

// digest is the SHA-256 of path's content, or nil when it cannot be read.
func digest(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(data)
	return sum[:]
}
