package chart

// The values schema and the templates' own checks: bad values fail helm template and helm lint, the
// schema is closed, and the plain YAML passes yamllint.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Bad values fail `helm template` (and so `helm install`) with a message naming what to fix.
func TestChartRejectsBadValues(t *testing.T) {
	base := filepath.Join(chartDir, "ci", "default-values.yaml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "string where a number belongs", args: []string{"--set", "replicaCount=two"}, want: "at '/replicaCount': got string, want integer"},
		{name: "quoted number", args: []string{"--set-string", "config.worker.max_in_flight=64"}, want: "at '/config/worker/max_in_flight': got string, want integer"},
		{name: "number where a string belongs", args: []string{"--set", "secret.appKey=12345678"}, want: "at '/secret/appKey': got number, want string"},
		{name: "unknown top-level key", args: []string{"--set", "replicasCount=2"}, want: "additional properties 'replicasCount' not allowed"},
		{name: "unknown config key", args: []string{"--set", "config.kafka.broker=k:9092"}, want: "additional properties 'broker' not allowed"},
		{name: "unknown channel", args: []string{"--set", "config.channels.tmall-trade.enabled=true"}, want: "additional properties 'tmall-trade' not allowed"},
		{name: "secret in the config", args: []string{"--set", "config.top.app_secret=x"}, want: "additional properties 'app_secret' not allowed"},
		{name: "password in the config", args: []string{"--set", "config.redis.password=x"}, want: "additional properties 'password' not allowed"},
		{name: "bad enum", args: []string{"--set", "config.kafka.sasl.mechanism=SCRAM-SHA-512"}, want: "/config/kafka/sasl/mechanism"},
		{name: "bad duration", args: []string{"--set", "config.kafka.max_wait=250"}, want: "/config/kafka/max_wait"},
		{name: "bad broker", args: []string{"--set", "config.kafka.brokers={kafka}"}, want: "/config/kafka/brokers/0"},
		{name: "http addr on one interface", args: []string{"--set", "config.http.addr=127.0.0.1:8080"}, want: "/config/http/addr"},
		{name: "HPA and KEDA", args: []string{"--set", "autoscaling.enabled=true", "--set", "keda.enabled=true"}, want: "autoscaling.enabled and keda.enabled are both true"},
		{name: "grace period not above shutdown", args: []string{"--set", "terminationGracePeriodSeconds=30"}, want: "terminationGracePeriodSeconds (30) must be greater than config.worker.shutdown_timeout (30s = 30s)"},
		{name: "grace period vs longer shutdown", args: []string{"--set", "config.worker.shutdown_timeout=2m", "--set", "terminationGracePeriodSeconds=90"}, want: "terminationGracePeriodSeconds (90) must be greater than config.worker.shutdown_timeout (2m = 120s)"},
		{name: "no app secret", args: []string{"--set", "secret.appSecret="}, want: "secret.appSecret is required"},
		{name: "SASL without credentials", args: []string{"--set", "config.kafka.sasl.mechanism=plain"}, want: "secret.kafkaSaslUsername and secret.kafkaSaslPassword are required"},
		{name: "TLS secret without TLS", args: []string{"--set", "kafkaTLS.secretName=tls"}, want: "kafkaTLS.secretName is set but config.kafka.tls.enabled is false"},
		{name: "client cert without key", args: []string{"--set", "config.kafka.tls.enabled=true", "--set", "kafkaTLS.secretName=tls", "--set", "kafkaTLS.certKey=tls.crt"}, want: "kafkaTLS.certKey and kafkaTLS.keyKey go together"},
		{name: "PDB with both bounds", args: []string{"--set", "pdb.minAvailable=1"}, want: "pdb.minAvailable and pdb.maxUnavailable are both set"},
		{name: "KEDA minimum above the partition cap", args: []string{"--set", "keda.enabled=true", "--set", "keda.partitions=2", "--set", "keda.minReplicaCount=3"}, want: "keda.minReplicaCount (3) exceeds the replica cap min(keda.maxReplicaCount, keda.partitions) = 2"},
		{name: "KEDA minimum zero", args: []string{"--set", "keda.enabled=true", "--set", "keda.minReplicaCount=0"}, want: "/keda/minReplicaCount"},
		{name: "no channel enabled", args: []string{
			"--set", "config.channels.tmall-aliauto.enabled=false", "--set", "config.channels.omni-saas.enabled=false",
			"--set", "config.channels.icbu-trade.enabled=false", "--set", "config.channels.mos-haiding.enabled=false",
			"--set", "config.channels.diantao-tripartite.enabled=false",
		}, want: "config.channels: at least one channel must be enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderChart(t, append([]string{"-f", base}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("helm template = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	t.Run("helm lint --strict fails too", func(t *testing.T) {
		out, err := exec.Command(helm(t), "lint", "--strict", chartDir, "-f", base, "--set", "replicaCount=two").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "got string, want integer") {
			t.Fatalf("helm lint = %v, want it to fail on the schema:\n%s", err, out)
		}
	})
}

// yamllint on the chart's plain YAML (templates are checked by helm lint).
func TestYamllintChart(t *testing.T) {
	yamllint(t, chartDir+"/Chart.yaml", chartDir+"/values.yaml", chartDir+"/ci/")
}

// The schema is valid JSON with $schema, and closed: every object says additionalProperties.
func TestChartSchemaIsClosed(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	if schema["$schema"] == nil {
		t.Error("values.schema.json has no $schema")
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"]; ok {
				if _, closed := v["additionalProperties"]; !closed {
					t.Errorf("%s: object with properties but no additionalProperties", path)
				}
				for k, p := range props.(map[string]any) {
					walk(path+"/"+k, p)
				}
			}
			for _, k := range []string{"items", "additionalProperties", "oneOf"} {
				if sub, ok := v[k]; ok {
					walk(path+"/"+k, sub)
				}
			}
		case []any:
			for i, sub := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), sub)
			}
		}
	}
	walk("", schema)
	for name, def := range schema["$defs"].(map[string]any) {
		walk("$defs/"+name, def)
	}
}
