package redistest_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/internal/testcert"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStart(t *testing.T) {
	s := redistest.Start(t)
	if got := s.Addr(); !strings.HasPrefix(got, "127.0.0.1:") || got == "127.0.0.1:6379" {
		t.Fatalf("Addr() = %q, want a loopback address other than 127.0.0.1:6379", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb := s.Client()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	cfg, err := rdb.ConfigGet(ctx, "save").Result()
	if err != nil {
		t.Fatalf("CONFIG GET save: %v", err)
	}
	if got := cfg["save"]; got != "" {
		t.Errorf("save = %q, want \"\" (no snapshots)", got)
	}
}

func TestStartArgs(t *testing.T) {
	s := redistest.StartArgs(t, "--maxmemory-policy", "allkeys-lru", "--user", "app", "on", ">pw", "~app:*", "+@all", "-time")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	check := func(t *testing.T) {
		t.Helper()
		cfg, err := s.Client().ConfigGet(ctx, "maxmemory-policy").Result()
		if err != nil {
			t.Fatalf("CONFIG GET: %v", err)
		}
		if got := cfg["maxmemory-policy"]; got != "allkeys-lru" {
			t.Errorf("maxmemory-policy = %q, want allkeys-lru", got)
		}
		app := s.ClientAs("app", "pw")
		if err := app.Set(ctx, "app:k", "v", time.Minute).Err(); err != nil {
			t.Errorf("SET app:k as app: %v", err)
		}
		if err := app.Time(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("TIME as app: error %v, want NOPERM", err)
		}
	}
	check(t)
	s.Restart() // the arguments apply to the restarted server too
	check(t)
}

func TestStartManyInParallel(t *testing.T) {
	// Free ports are probed and released before redis-server binds them; many servers starting at once
	// must still each end up on their own port.
	addrs := make(chan string, 8)
	t.Run("group", func(t *testing.T) {
		for i := range cap(addrs) {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				addrs <- redistest.Start(t).Addr()
			})
		}
	})
	close(addrs)
	seen := map[string]bool{}
	for a := range addrs {
		if seen[a] {
			t.Errorf("address %s handed out twice", a)
		}
		seen[a] = true
	}
}

func TestStopRestart(t *testing.T) {
	s := redistest.Start(t)
	rdb := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	addr := s.Addr()

	s.Stop()
	s.Stop() // idempotent
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING after Stop succeeded, want an error")
	}

	s.Restart()
	if got := s.Addr(); got != addr {
		t.Errorf("Addr() after Restart = %q, want %q", got, addr)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if n, err := rdb.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS k after Restart = %d, %v; want 0 (data is not persisted)", n, err)
	}
}

func TestStartCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	if got := len(c.Addrs()); got != 3 {
		t.Fatalf("len(Addrs()) = %d, want 3", got)
	}
	rdb := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	masters := map[string]bool{}
	for i := range 30 {
		key := fmt.Sprintf("key-%d", i)
		if err := rdb.Set(ctx, key, i, time.Minute).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		node, err := rdb.MasterForKey(ctx, key)
		if err != nil {
			t.Fatalf("MasterForKey(%s): %v", key, err)
		}
		masters[node.Options().Addr] = true
	}
	if got := len(masters); got != 3 {
		t.Errorf("30 keys landed on %d masters, want 3", got)
	}
}

func TestStartSecured(t *testing.T) {
	certs, err := testcert.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Quotes, a backslash, a space and non-ASCII bytes must survive the trip through redis.conf.
	const odd = "p\"w\\ d\xc3\xa9#;"
	tests := []struct {
		name     string
		tls      bool
		user     string // "" = the default user
		password string // "" = no AUTH
		whoami   string // the user Client is authenticated as
	}{
		{"tls", true, "", "", "default"},
		{"password", false, "", odd, "default"},
		{"acl user", false, "svc", odd, "svc"},
		{"tls and password", true, "", "s3cret", "default"},
		{"tls and acl user", true, "svc", "s3cret", "svc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []redistest.Option
			if tt.tls {
				opts = append(opts, redistest.WithTLS(certs))
			}
			if tt.password != "" {
				opts = append(opts, redistest.WithAuth(tt.user, tt.password))
			}
			s := redistest.Start(t, opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET through Client: %v", err)
			}
			if got, err := s.Client().Do(ctx, "ACL", "WHOAMI").Text(); err != nil || got != tt.whoami {
				t.Errorf("ACL WHOAMI = %q, %v; want %q", got, err, tt.whoami)
			}
			s.Restart()
			if err := s.Client().Ping(ctx).Err(); err != nil {
				t.Fatalf("PING through Client after Restart: %v", err)
			}

			// What the server refuses: plain TCP to a TLS server, no or a wrong password (with an ACL user
			// the default user is disabled, so no password is refused as well).
			var tlsCfg *tls.Config
			if tt.tls {
				tlsCfg = certs.ClientConfig(false)
				plain := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: tt.user, Password: tt.password, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
				defer plain.Close()
				if err := plain.Ping(ctx).Err(); err == nil {
					t.Error("PING over plain TCP succeeded, want the TLS-only server to refuse it")
				}
			}
			if tt.password == "" {
				return
			}
			for _, c := range []struct{ name, user, password, want string }{
				{"no password", "", "", "NOAUTH"},
				{"wrong password", tt.user, "wrong", "WRONGPASS"},
			} {
				rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), TLSConfig: tlsCfg, Username: c.user, Password: c.password, MaxRetries: -1})
				err := rdb.Ping(ctx).Err()
				rdb.Close()
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: PING error %v, want %s", c.name, err, c.want)
				}
			}
		})
	}
}
