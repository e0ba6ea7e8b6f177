package chart

import (
	"path/filepath"
	"strings"
	"testing"
)

// The worker's GOMEMLIMIT is 90% of the container's memory limit (the Go runtime collects harder
// as it nears it instead of the kernel killing the pod), or goMemLimit when set.
func TestChartGoMemLimit(t *testing.T) {
	base := filepath.Join(chartDir, "ci", "default-values.yaml")
	tests := []struct {
		name string
		args []string
		want string // "" = no GOMEMLIMIT variable
		err  string
	}{
		{name: "default limit 512Mi", want: "460MiB"},
		{name: "Gi", args: []string{"--set", "resources.limits.memory=1Gi"}, want: "921MiB"},
		{name: "fraction", args: []string{"--set", "resources.limits.memory=1.5Gi"}, want: "1382MiB"},
		{name: "decimal G", args: []string{"--set-string", "resources.limits.memory=2G"}, want: "1716MiB"},
		{name: "bytes", args: []string{"--set-string", "resources.limits.memory=536870912"}, want: "460MiB"},
		{name: "set explicitly", args: []string{"--set", "goMemLimit=300MiB"}, want: "300MiB"},
		{name: "no limit", args: []string{"--set", "resources.limits=null"}},
		{name: "unreadable limit", args: []string{"--set", "resources.limits.memory=5x"}, err: `resources.limits.memory "5x": cannot derive GOMEMLIMIT`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := renderChart(t, append([]string{"-f", base}, tt.args...)...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("render: %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, e := range parseRelease(t, out).deployment.Spec.Template.Spec.Containers[0].Env {
				if e.Name == "GOMEMLIMIT" {
					got = e.Value
				}
			}
			if got != tt.want {
				t.Errorf("GOMEMLIMIT %q, want %q", got, tt.want)
			}
		})
	}
}
