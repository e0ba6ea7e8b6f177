package examples

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/ordersync/ordersync/internal/kafkatest"
	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dispatch"
)

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)

// checkPublished checks that every channel's topic holds exactly its example event, keyed by
// the idempotency key the worker derives, with a W3C traceparent header.
func checkPublished(t *testing.T, b *kafkatest.Broker, eventsDir string) {
	t.Helper()
	reg, err := dispatch.NewRegistry(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range reg.Channels() {
		value, err := os.ReadFile(filepath.Join(eventsDir, ch.ID+".json"))
		if err != nil {
			t.Fatal(err)
		}
		env, err := dispatch.DecodeEnvelope(value, 0)
		if err != nil {
			t.Fatalf("%s example: %v", ch.ID, err)
		}
		p, err := ch.Prepare(env)
		if err != nil {
			t.Fatalf("%s example: %v", ch.ID, err)
		}
		msgs, err := b.ReadAll(context.Background(), ch.Topic, 1, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 {
			t.Errorf("%s: %d records, want 1", ch.Topic, len(msgs))
			continue
		}
		m := msgs[0]
		if string(m.Key) != p.IdempotencyKey {
			t.Errorf("%s: key %q, want the idempotency key %q", ch.Topic, m.Key, p.IdempotencyKey)
		}
		if !bytes.Equal(m.Value, value) {
			t.Errorf("%s: the value is not the example event byte for byte", ch.Topic)
		}
		if tp := consumer.Header(m, "traceparent"); !traceparentRE.MatchString(tp) {
			t.Errorf("%s: traceparent %q is not a W3C trace context", ch.Topic, tp)
		}
	}
}

// startBroker runs a broker with every channel's default topic.
func startBroker(t *testing.T) *kafkatest.Broker {
	t.Helper()
	reg, err := dispatch.NewRegistry(nil)
	if err != nil {
		t.Fatal(err)
	}
	return kafkatest.Start(t, 3, reg.Topics()...)
}

func TestKcatPublish(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat not found: run .ci/deps (apt-get install kcat)")
	}
	b := startBroker(t)
	out, err := exec.Command("bash", "kcat/publish.sh", b.Addr()).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat/publish.sh: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	checkPublished(t, b, "events")
}

// TestGoProducer builds and runs examples/producer as a publisher would.
func TestGoProducer(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "producer")
	if out, err := exec.Command("go", "build", "-o", bin, "./producer").CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/producer: %v\n%s", err, out)
	}
	b := startBroker(t)
	out, err := exec.Command(bin, "-brokers", b.Addr(), "-events", "events").CombinedOutput()
	if err != nil {
		t.Fatalf("producer: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	checkPublished(t, b, "events")
}
