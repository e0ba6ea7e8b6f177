package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ordersync/ordersync/pkg/dispatch"
)

const (
	apiDir      = "../../api"
	asyncAPIDir = "../../tools/asyncapi" // package.json pins @asyncapi/parser; .ci/deps runs npm ci
)

// TestContractUpToDate fails when the committed contract (api/) differs from what the code
// generates: change a channel's wire structs, the envelope or the Outcome, and this fails until
// `go run ./cmd/worker schema` is run and the result committed.
func TestContractUpToDate(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"schema", "--check", "--dir", apiDir}, &out, &errOut, nil); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
}

func TestSchemaCommand(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"schema", "--dir", dir}, &out, &errOut, nil); err != nil {
		t.Fatalf("schema: %v\n%s", err, errOut.String())
	}
	files, err := dispatch.ContractFiles()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: not written as generated (err %v)", name, err)
		}
	}

	// A drifted file, a missing one and a stale one are each reported.
	if err := os.WriteFile(filepath.Join(dir, "schemas", "omni-saas.event.json"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "asyncapi.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "schemas", "gone.event.json"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"schema", "--check", "--dir", dir}, &out, &errOut, nil)
	for _, want := range []string{"schemas/omni-saas.event.json: differs", "asyncapi.yaml: missing", "schemas/gone.event.json: not generated"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("schema --check on a drifted directory: error %v, want it to mention %q", err, want)
		}
	}
	// Writing again repairs it, stale file included.
	if err := run(context.Background(), []string{"schema", "--dir", dir}, &out, &errOut, nil); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"schema", "--check", "--dir", dir}, &out, &errOut, nil); err != nil {
		t.Errorf("after rewriting: %v", err)
	}

	out.Reset()
	if err := run(context.Background(), []string{"schema", "--print", "schemas/outcome.json"}, &out, &errOut, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), files["schemas/outcome.json"]) {
		t.Errorf("schema --print schemas/outcome.json printed something else:\n%s", out.String())
	}
	if err := run(context.Background(), []string{"schema", "--print", "nope.json"}, &out, &errOut, nil); err == nil {
		t.Error("schema --print of an unknown file: no error")
	}
}

// TestAsyncAPIDocumentValid validates the committed api/asyncapi.yaml with the official AsyncAPI
// parser (@asyncapi/parser, the library behind `asyncapi validate`), installed by .ci/deps from
// tools/asyncapi/package-lock.json.
func TestAsyncAPIDocumentValid(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: the AsyncAPI check needs Node.js 18 or later (Debian: apt-get install nodejs npm), then run .ci/deps")
	}
	if _, err := os.Stat(filepath.Join(asyncAPIDir, "node_modules", "@asyncapi", "parser", "package.json")); err != nil {
		t.Fatalf("@asyncapi/parser is not installed: run .ci/deps (npm ci --ignore-scripts in tools/asyncapi): %v", err)
	}
	check := func(file string) (string, error) {
		cmd := exec.Command(node, filepath.Join(asyncAPIDir, "validate.mjs"), file)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	out, err := check(filepath.Join(apiDir, "asyncapi.yaml"))
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("api/asyncapi.yaml is not a valid AsyncAPI document: %v", err)
	}
	if !strings.Contains(out, "valid AsyncAPI 3.0.0") {
		t.Errorf("the validator did not report a valid AsyncAPI 3.0.0 document")
	}

	// The check can fail: an operation with an action AsyncAPI does not have is rejected.
	doc, err := os.ReadFile(filepath.Join(apiDir, "asyncapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, bytes.Replace(doc, []byte("action: send"), []byte("action: publish"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := check(bad); err == nil {
		t.Errorf("a document with action: publish passed:\n%s", out)
	}
}
