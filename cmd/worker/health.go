package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/pkg/consumer"
)

// health serves /healthz (the process is alive) and /readyz (group joined, Redis and a broker
// reachable, not shutting down). Dependency checks are cached briefly so probes cannot hammer them.
type health struct {
	consumer *consumer.Consumer
	redis    redis.UniversalClient
	dialer   *kafka.Dialer
	brokers  []string

	mu      sync.Mutex
	checked time.Time
	lastErr error
}

func (h *health) live(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (h *health) ready(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := h.check(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready:", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (h *health) check(ctx context.Context) error {
	if ps := h.consumer.Paused(); len(ps) > 0 {
		return pausedError(ps)
	}
	err := h.cachedDependencies(ctx)
	if !h.consumer.Ready() {
		// Say why when a dependency tells: a group that cannot be joined because the brokers refuse
		// the credentials is otherwise a wait without a word.
		if err != nil {
			return fmt.Errorf("consumer group not joined: %w", err)
		}
		return errors.New("consumer group not joined")
	}
	return err
}

func (h *health) cachedDependencies(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.checked) < 2*time.Second {
		return h.lastErr
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	h.lastErr = h.dependencies(ctx)
	h.checked = time.Now()
	return h.lastErr
}

func (h *health) dependencies(ctx context.Context) error {
	if err := h.redis.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	var err error
	for _, b := range h.brokers {
		var conn *kafka.Conn
		if conn, err = h.dialer.DialContext(ctx, "tcp", b); err == nil {
			conn.Close()
			return nil
		}
	}
	return fmt.Errorf("kafka: %w", err)
}

// pausedError describes the pauses in force, one per line.
func pausedError(ps []consumer.PauseState) error {
	var b strings.Builder
	b.WriteString("intake paused")
	for _, p := range ps {
		fmt.Fprintf(&b, "\n  %s (%s) since %s", p.Reason, p.Scope, p.Since.UTC().Format(time.RFC3339))
		switch {
		case p.Probing:
			b.WriteString(", probing now")
		case !p.Until.IsZero():
			fmt.Fprintf(&b, ", next probe %s", p.Until.UTC().Format(time.RFC3339))
		}
		if p.Err != "" {
			fmt.Fprintf(&b, ": %s", p.Err)
		}
	}
	return errors.New(b.String())
}
