package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Distinctive secret values: no error, log line or rendering may ever contain them.
const testAppSecret = "app-secret-Zq81xWv"

// Issue 7: the example configuration passes `worker run --config configs/ordersync.yaml --check` once the
// credentials come from the environment, and fails it, naming the keys, without them.
func TestExampleConfigCheck(t *testing.T) {
	args := []string{"run", "--config", "../../configs/ordersync.yaml", "--check"}
	var stdout, stderr bytes.Buffer
	creds := []string{"ORDERSYNC_TOP_APP_KEY=12345678", "ORDERSYNC_TOP_APP_SECRET=" + testAppSecret}
	if err := run(context.Background(), args, &stdout, &stderr, creds); err != nil {
		t.Fatalf("worker %s = %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), testAppSecret) {
		t.Error("the output shows the app secret")
	}
	err := run(context.Background(), args, &stdout, &stderr, nil)
	if err == nil || !strings.Contains(err.Error(), "top.app_key: required") {
		t.Errorf("worker %s without credentials = %v, want an error naming top.app_key", strings.Join(args, " "), err)
	}
}

// A top.default_seller without a session in top.sessions_file would reject every event that names
// no seller; start-up refuses it.
func TestDefaultSellerNeedsASession(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sessions.yaml")
	if err := os.WriteFile(path, []byte("shop-a: session-a-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"ORDERSYNC_TOP_APP_KEY=12345678", "ORDERSYNC_TOP_APP_SECRET=" + testAppSecret,
		"ORDERSYNC_TOP_SESSIONS_FILE=" + path}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"run", "--check"}, &out, &out, append(env, "ORDERSYNC_TOP_DEFAULT_SELLER=shop-a")); err != nil {
		t.Fatalf("default seller with a session: %v", err)
	}
	err := run(context.Background(), []string{"run", "--check"}, &out, &out, append(env, "ORDERSYNC_TOP_DEFAULT_SELLER=shop-b"))
	if err == nil || !strings.Contains(err.Error(), `top.default_seller: seller "shop-b" has no session in `+path) {
		t.Errorf("default seller without a session: %v, want an error naming top.default_seller", err)
	}
}

// yamllint (installed by .ci/deps) checks the example configuration with the repository's .yamllint.
func TestYamllintConfigs(t *testing.T) {
	yamllint(t, "../../configs/")
}

// yamllint runs `yamllint --strict` with the repository's .yamllint on paths.
func yamllint(t *testing.T, paths ...string) {
	t.Helper()
	bin, err := exec.LookPath("yamllint")
	if err != nil {
		t.Fatal("yamllint not found: run .ci/deps (it installs Debian's yamllint package)")
	}
	args := append([]string{"--strict", "--config-file", "../../.yamllint"}, paths...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("yamllint %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
