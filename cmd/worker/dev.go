//go:build !nodev

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/internal/kafkatest"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// Credentials of the dev-mode simulator. They are not secrets: they exist only in dev mode.
const (
	devAppKey    = "dev-app-key"
	devAppSecret = "dev-app-secret"
	devSeller    = "demo"
	devSession   = "dev-session-demo"
)

// runDev is `worker dev`: an embedded Kafka-protocol broker (kfake), an in-process Redis
// (miniredis) and the TOP gateway simulator, with every topic created, and the worker on top.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	demo := fs.Bool("demo", false, "publish the five seed events, print their outcomes and exit")
	kafkaPort := fs.Int("kafka-port", 9092, "broker port on 127.0.0.1 (a free port if taken)")
	simAddr := fs.String("topsim-addr", "127.0.0.1:18080", "simulator address (a free port if taken)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "health and metrics address (a free port if taken)")
	partitions := fs.Int("partitions", 3, "partitions per topic")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	cfg := config.Default()
	cfg.Log.Format = "text"
	topics := []string{cfg.Kafka.ResultsTopic, cfg.Kafka.DLQTopic}
	for _, ch := range cfg.Channels {
		topics = append(topics, ch.Topic)
	}
	sort.Strings(topics)

	broker, err := kafkatest.NewOn(*kafkaPort, int32(*partitions), topics...)
	if err != nil {
		if broker, err = kafkatest.NewOn(0, int32(*partitions), topics...); err != nil {
			return fmt.Errorf("start broker: %w", err)
		}
	}
	defer broker.Close()

	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return fmt.Errorf("start redis: %w", err)
	}
	defer mr.Close()

	registry, err := dispatch.NewRegistry(nil)
	if err != nil {
		return err
	}
	sim, err := topsim.New(topsim.Config{AppKey: devAppKey, AppSecret: devAppSecret, Sessions: []string{devSession}, Rules: registry})
	if err != nil {
		return err
	}
	defer sim.Close()
	simLn, err := listen(*simAddr)
	if err != nil {
		return err
	}
	simSrv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}

	cfg.Kafka.Brokers = []string{broker.Addr()}
	cfg.Kafka.MaxWait = 100 * time.Millisecond
	cfg.Kafka.CommitInterval = 200 * time.Millisecond
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.Kafka.RebalanceTimeout = 6 * time.Second
	cfg.Kafka.HeartbeatInterval = time.Second
	cfg.Redis.Addrs = []string{mr.Addr()}
	cfg.Top.GatewayURL = "http://" + simLn.Addr().String() + "/router/rest"
	cfg.Top.AppKey = devAppKey
	cfg.Top.AppSecret = devAppSecret
	cfg.Top.DefaultSeller = devSeller
	// The sessions go through a file, as in production.
	dir, err := os.MkdirTemp("", "ordersync-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg.Top.SessionsFile = filepath.Join(dir, "sessions.yaml")
	if err := os.WriteFile(cfg.Top.SessionsFile, []byte(devSeller+": "+devSession+"\n"), 0o600); err != nil {
		return err
	}
	cfg.Top.Timeout = 2 * time.Second // the simulator is local
	cfg.Worker.ShutdownTimeout = 10 * time.Second
	httpLn, err := listen(*httpAddr)
	if err != nil {
		return err
	}
	cfg.HTTP.Addr = httpLn.Addr().String()
	httpLn.Close() // serve binds it again; dev mode accepts the tiny race
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("dev configuration: %w", err)
	}
	sessions, err := config.LoadSessions(cfg.Top.SessionsFile)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	wctx, stopWorker := context.WithCancel(gctx)
	defer stopWorker()
	g.Go(func() error {
		if err := simSrv.Serve(simLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		// miniredis keeps time still; advance it so leases and retention expire in real time.
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return nil
			case <-t.C:
				mr.FastForward(time.Second)
			}
		}
	})
	ready := make(chan string, 1)
	g.Go(func() error {
		defer simSrv.Close()
		return serve(wctx, cfg, sessions, stderr, &hooks{ready: func(addr string) { ready <- addr }, emulatedRedis: true})
	})

	select {
	case addr := <-ready:
		printDevBanner(stdout, broker.Addr(), mr.Addr(), simLn.Addr().String(), addr, cfg)
	case <-gctx.Done():
		return g.Wait()
	}
	if *demo {
		err := runDemo(wctx, stdout, broker, registry, cfg.Kafka.ResultsTopic)
		stopWorker()
		if werr := g.Wait(); err == nil {
			err = werr
		}
		return err
	}
	return g.Wait()
}

// listen binds addr, or a free port on the same host when addr is taken.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	host, _, serr := net.SplitHostPort(addr)
	if serr != nil {
		return nil, err
	}
	return net.Listen("tcp", net.JoinHostPort(host, "0"))
}

func printDevBanner(w io.Writer, broker, redisAddr, sim, httpAddr string, cfg config.Config) {
	seeds := dispatch.SeedEvents()
	var compact bytes.Buffer
	_ = json.Compact(&compact, seeds["omni-saas"])
	fmt.Fprintf(w, `
ordersync dev is running — everything in this process, nothing to install.

  Kafka (kfake)     %s   topics: orders.<channel>, %s, %s
  Redis (miniredis) %s
  TOP simulator     http://%s/router/rest   (app key %s; GET /stats counts calls)
  Health, metrics   http://%s/healthz  /readyz  /metrics

Publish an order event (omni-saas), keyed by its idempotency key:

  echo '%s' | kcat -b %s -t %s -P -k REQ-3436967

Read the outcomes:

  kcat -b %s -C -t %s -o beginning -e -f '%%k %%s\n'

Send traces to a local Jaeger with OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318. Ctrl-C stops.

`, broker, cfg.Kafka.ResultsTopic, cfg.Kafka.DLQTopic, redisAddr, sim, devAppKey, httpAddr,
		compact.String(), broker, cfg.Channels["omni-saas"].Topic, broker, cfg.Kafka.ResultsTopic)
}

// runDemo publishes the seed event of every channel and prints the outcomes as they arrive. It
// fails unless every one succeeded.
func runDemo(ctx context.Context, w io.Writer, broker *kafkatest.Broker, registry *dispatch.Registry, results string) error {
	seeds := dispatch.SeedEvents()
	want := make(map[string]bool)
	var msgs []kafka.Message
	for _, ch := range registry.Channels() {
		value := seeds[ch.ID]
		env, err := dispatch.DecodeEnvelope(value, dispatch.DefaultMaxBytes)
		if err != nil {
			return fmt.Errorf("seed %s: %w", ch.ID, err)
		}
		prep, err := ch.Prepare(env)
		if err != nil {
			return fmt.Errorf("seed %s: %w", ch.ID, err)
		}
		want[env.EventID] = true
		msgs = append(msgs, kafka.Message{Topic: ch.Topic, Key: []byte(prep.IdempotencyKey), Value: value})
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := broker.Produce(pctx, msgs...); err != nil {
		return fmt.Errorf("publish seed events: %w", err)
	}
	fmt.Fprintf(w, "published %d seed events; outcomes:\n", len(msgs))

	deadline := time.Now().Add(60 * time.Second)
	printed := make(map[string]bool)
	failed := 0
	for len(printed) < len(want) {
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: %d of %d outcomes arrived within 60s", len(printed), len(want))
		}
		outs, err := broker.ReadAll(pctx, results, 0, 0)
		if err != nil {
			return fmt.Errorf("read outcomes: %w", err)
		}
		for _, m := range outs {
			var o dispatch.Outcome
			if json.Unmarshal(m.Value, &o) != nil || !want[o.EventID] || printed[o.EventID] {
				continue
			}
			printed[o.EventID] = true
			if o.Status != dispatch.StatusSucceeded {
				failed++
			}
			fmt.Fprintf(w, "%-20s %-10s %s\n", o.Channel, o.Status, strings.TrimSpace(string(m.Value)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if failed > 0 {
		return fmt.Errorf("demo: %d of %d events did not succeed", failed, len(want))
	}
	fmt.Fprintf(w, "all %d seed events succeeded\n", len(want))
	return nil
}
