package telemetry

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// spanText flattens a span's name, attributes, events and status into one
// string, to search it for anything that must not be there.
func spanText(s sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	b.WriteString(s.Name())
	kv := func(attrs []attribute.KeyValue) {
		for _, a := range attrs {
			b.WriteString(" " + string(a.Key) + "=" + a.Value.String())
		}
	}
	kv(s.Attributes())
	for _, e := range s.Events() {
		b.WriteString(" event " + e.Name)
		kv(e.Attributes)
	}
	b.WriteString(" status " + s.Status().Description)
	return b.String()
}

func TestInstrumentRedis(t *testing.T) {
	const (
		password = "redis-S3cret-pw"
		key      = "ordersync:dedupe:{omni-saas:idem-7f3a}"
		payload  = `{"status":"succeeded","receiver_mobile":"13912345678","session":"6100e23657fb0b2d0c78"}`
	)
	mr := miniredis.NewMiniRedis()
	mr.RequireAuth(password)
	if err := mr.Start(); err != nil {
		t.Fatal(err)
	}
	defer mr.Close()

	cleanEnv(t)
	tel, _ := setup(t, Options{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), Password: password})
	defer func() { _ = rdb.Close() }()
	if err := InstrumentRedis(rdb, tp, tel.MeterProvider()); err != nil {
		t.Fatalf("InstrumentRedis: %v", err)
	}

	ctx := context.Background()
	if err := rdb.SetNX(ctx, key, payload, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, key).Result(); err != nil || got != payload {
		t.Fatalf("GET = %q, %v", got, err)
	}
	if err := rdb.Get(ctx, key+":absent").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET absent: %v, want redis.Nil", err)
	}
	script := redis.NewScript(`return redis.call("SET", KEYS[1], ARGV[1], "XX")`)
	if err := script.Run(ctx, rdb, []string{key}, payload).Err(); err != nil {
		t.Fatalf("script: %v", err)
	}
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, payload, time.Hour)
		p.Expire(ctx, key, time.Minute)
		return nil
	}); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	if err := rdb.Incr(ctx, key).Err(); err == nil {
		t.Fatal("INCR on JSON succeeded, want an error")
	}

	spans := rec.Ended()
	var names []string
	for _, s := range spans {
		names = append(names, s.Name())
		text := spanText(s)
		for _, secret := range []string{password, "idem-7f3a", "13912345678", "6100e23657fb0b2d0c78", "receiver_mobile"} {
			if strings.Contains(text, secret) {
				t.Errorf("span %q holds %q: %s", s.Name(), secret, text)
			}
		}
		for _, a := range s.Attributes() {
			switch a.Key {
			case "db.statement", "db.query.text", "code.function", "code.filepath":
				t.Errorf("span %q has attribute %s=%q", s.Name(), a.Key, a.Value.String())
			}
		}
	}
	sort.Strings(names)
	t.Logf("spans: %q", names)
	for _, want := range []string{"set", "get", "evalsha", "redis.dial", "incr"} {
		if !contains(names, want) {
			t.Errorf("no %q span among %q", want, names)
		}
	}
	if !containsPrefix(names, "redis.pipeline ") {
		t.Errorf("no pipeline span among %q", names)
	}
	if contains(names, "auth") || contains(names, "hello") || contains(names, "client") || containsPrefix(names, "redis.pipeline client") {
		t.Errorf("connection set-up (AUTH/HELLO/CLIENT) traced: %q", names)
	}

	body, _ := scrape(t, tel, "")
	for _, want := range []string{"db_client_connections_use_time_milliseconds_bucket{", `pool_name="` + mr.Addr() + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	var redisLines []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "# TYPE db_client") {
			redisLines = append(redisLines, l)
		}
	}
	t.Logf("redis metrics:\n%s", strings.Join(redisLines, "\n"))
	if strings.Contains(body, password) || strings.Contains(body, "idem-7f3a") {
		t.Error("scrape holds the password or a key")
	}
}

func TestInstrumentRedisUnsupported(t *testing.T) {
	if err := InstrumentRedis(nil, nil, nil); err == nil {
		t.Error("InstrumentRedis(nil) succeeded, want an error")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func containsPrefix(s []string, p string) bool {
	for _, x := range s {
		if strings.HasPrefix(x, p) {
			return true
		}
	}
	return false
}
