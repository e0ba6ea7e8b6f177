package chart

// The programs the tests run: helm, yamllint and the worker binary, built once per test run.

import (
	"bytes"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const (
	repoRoot    = "../.."
	chartDir    = repoRoot + "/charts/ordersync"
	releaseName = "rel"
	releaseNS   = "orders"
)

// binDir holds the worker binary built for this test run; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ordersync-chart-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	return m.Run()
}

var buildWorker = sync.OnceValues(func() (string, error) {
	// `go test` puts the go command of its own GOROOT first on PATH.
	bin := filepath.Join(binDir, "worker")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/worker")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/worker in %s: %v\n%s", repoRoot, err, out)
	}
	return bin, nil
})

// worker returns the path of the worker binary, built from the parent module on first use.
func worker(t *testing.T) string {
	t.Helper()
	bin, err := buildWorker()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// helm returns the helm binary: on PATH, or where `go install` puts it.
func helm(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "helm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Fatal("helm not found: run .ci/deps (go install helm.sh/helm/v3/cmd/helm@v3.22.0)")
	return ""
}

// yamllint runs `yamllint --strict` with the repository's .yamllint on paths.
func yamllint(t *testing.T, paths ...string) {
	t.Helper()
	bin, err := exec.LookPath("yamllint")
	if err != nil {
		t.Fatal("yamllint not found: run .ci/deps (it installs Debian's yamllint package)")
	}
	args := append([]string{"--strict", "--config-file", repoRoot + "/.yamllint"}, paths...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("yamllint %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// renderChart runs `helm template` with args (value files, --set) and returns its output.
func renderChart(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", releaseName, chartDir, "--namespace", releaseNS}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("helm template %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}
