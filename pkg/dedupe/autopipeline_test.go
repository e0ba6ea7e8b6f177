package dedupe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/pkg/dedupe"
)

// dropProxy forwards TCP connections to a Redis server. While armed, the next reply from the
// server is thrown away and the connection closed: the server executed the batch, the client
// never learns it did.
type dropProxy struct {
	ln      net.Listener
	target  string
	armed   atomic.Bool
	dropped atomic.Int32
	wg      sync.WaitGroup
}

func startDropProxy(t *testing.T, target string) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *dropProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() { _, _ = io.Copy(server, client); server.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && p.armed.CompareAndSwap(true, false) {
			p.dropped.Add(1)
			return // the reply is lost with the connection
		}
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A batch whose replies are lost on a dropped connection is sent again whole (go-redis retries
// it): every claim and completion in it runs twice on the server. The callers must not notice:
// each claim gets its own first token, each completion succeeds, each key ends done with its
// outcome.
func TestAutoPipelineBatchRunTwice(t *testing.T) {
	srv := redistest.Start(t)
	proxy := startDropProxy(t, srv.Addr())
	rdb := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String(), MaxRetries: 3, MinRetryBackoff: time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	s := newStoreWith(t, rdb, dedupe.Config{AutoPipeline: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}

	const n = 64
	keys := make([]dedupe.Key, n)
	for i := range keys {
		keys[i] = dedupe.Key{Channel: "omni-saas", ID: fmt.Sprintf("REQ-%d", i)}
	}
	direct := srv.Client()
	evalshas := func() int {
		t.Helper()
		info, err := direct.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		var calls int
		if i := strings.Index(info, "cmdstat_evalsha:calls="); i >= 0 {
			fmt.Sscanf(info[i+len("cmdstat_evalsha:calls="):], "%d", &calls)
		}
		return calls
	}
	// run calls op for every key at once, with the proxy armed to drop the first reply, and checks
	// that the server ran some scripts twice.
	run := func(what string, op func(i int) error) {
		t.Helper()
		// A command first, so the pipeline's connection is open and past its handshake: the
		// dropped reply is then a batch's.
		if _, err := s.Get(ctx, dedupe.Key{Channel: "omni-saas", ID: "warm-up"}); err != nil && !errors.Is(err, dedupe.ErrNotFound) {
			t.Fatal(err)
		}
		// The first reply after that is a batch's, however the callers' commands were batched.
		proxy.armed.Store(true)
		before, calls := proxy.dropped.Load(), evalshas()
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = op(i) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s %s: %v", what, keys[i], err)
			}
		}
		if proxy.dropped.Load() == before {
			t.Fatalf("%s: no reply was dropped; the test proves nothing", what)
		}
		if ran := evalshas() - calls; ran <= n {
			t.Fatalf("%s: the server ran %d scripts for %d calls; want the lost batch run again", what, ran, n)
		} else {
			t.Logf("%s: %d calls, %d scripts run on the server", what, n, ran)
		}
	}
	claims := make([]dedupe.Claim, n)
	run("claim", func(i int) error {
		var err error
		claims[i], err = s.Claim(ctx, keys[i], "fp", fmt.Sprintf("owner-%d", i), time.Minute)
		return err
	})
	for i, c := range claims {
		if c.State != dedupe.Claimed || c.Token != 1 || c.TookOver {
			t.Errorf("%s: claim %+v, want Claimed with token 1 and no takeover", keys[i], c)
		}
	}
	run("complete", func(i int) error {
		return s.Complete(ctx, keys[i], fmt.Sprintf("owner-%d", i), claims[i].Token, []byte("outcome-"+keys[i].ID), time.Hour)
	})
	for i, k := range keys {
		r, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != dedupe.Done || string(r.Outcome) != "outcome-"+k.ID {
			t.Errorf("%s: %+v, want done with its outcome", keys[i], r)
		}
	}
}
