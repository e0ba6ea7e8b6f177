package chart

import (
	"os"
	"strings"
	"testing"
)

// The image is built as issue 7 says, and the Makefile's static target builds the same binary.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(repoRoot + "/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{
		"FROM --platform=$BUILDPLATFORM golang:1.26",
		"CGO_ENABLED=0",
		"-tags nodev -trimpath", // the production binary leaves worker dev out
		`-ldflags "-s -w -X main.version=${VERSION}"`,
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"USER 65532:65532",
		`ENTRYPOINT ["/worker"]`,
		`CMD ["run"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile does not contain %q", want)
		}
	}
	mk, err := os.ReadFile(repoRoot + "/Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LDFLAGS   := -s -w -X main.version=$(VERSION)", "static:", "CGO_ENABLED=0 $(GO) build -tags nodev -trimpath -ldflags '$(LDFLAGS)'", "image:"} {
		if !strings.Contains(string(mk), want) {
			t.Errorf("Makefile does not contain %q", want)
		}
	}
}
