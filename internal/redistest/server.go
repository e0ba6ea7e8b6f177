// Package redistest starts real redis-server processes for tests: a single node that can be stopped and
// restarted on the same port, and a local Redis Cluster.
//
// Every server listens on a free loopback port chosen by the kernel (never 127.0.0.1:6379), keeps its data in
// memory only (--save "" --appendonly no), runs in the foreground in a per-test temporary directory and is
// killed when the test ends. A missing redis-server or redis-cli binary fails the test with a message saying
// how to install it; tests never skip.
//
// A standalone server may be secured: [WithTLS] makes it speak TLS only, [WithAuth] makes it require a
// password (of the default user or of an ACL user). [Server.Client] and the readiness checks then connect
// with the same settings.
//
// Start, StartCluster and Restart may call Fatal on the test that started the server, so they must run on
// that test's goroutine. The other methods are safe for concurrent use.
package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ordersync/ordersync/internal/testcert"
)

const (
	serverBinary = "redis-server"
	cliBinary    = "redis-cli"
	installHint  = "install it, e.g. `apt-get install redis-server` (Debian/Ubuntu; it brings redis-cli along)"
	tlsHint      = "this redis-server was built without TLS support; install one built with it, e.g. Debian's " +
		"`apt-get install redis-server` (Debian builds it with BUILD_TLS=yes)"

	startTimeout = 10 * time.Second
	pollInterval = 5 * time.Millisecond
	portAttempts = 20
)

// errPortTaken reports that a server could not bind its port because something else got it first.
var errPortTaken = errors.New("port already in use")

// Server is one redis-server process owned by a test. Create it with Start.
type Server struct {
	tb    testing.TB
	bin   string
	dir   string
	extra []string // command-line arguments for cluster mode
	args  []string // the caller's extra command-line arguments (StartArgs)
	port  int
	bus   int // cluster bus port, 0 unless cluster mode

	certs *testcert.Set // non-nil: TLS only, on port
	conf  []string      // redis.conf lines from options (credentials stay off the command line)
	probe probe         // how readiness checks connect
	user  string        // AUTH user for Client ("" = the default user)
	pass  string        // AUTH password for Client ("" = none)

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has returned
	err  error         // cmd.Wait's result, valid after done is closed
}

// Option secures a server started with [Start].
type Option func(*Server)

// WithTLS makes the server accept TLS connections only (plain TCP is off), presenting certs' server
// certificate; clients need not present one (tls-auth-clients no). Addr is then the TLS port, and
// Client connects over TLS trusting certs' CA.
func WithTLS(certs *testcert.Set) Option {
	return func(s *Server) {
		s.certs = certs
		s.probe.tls = certs.ClientConfig(false)
	}
}

// WithAuth makes the server require AUTH with password. With user "" or "default" it is the default
// user's password (requirepass); otherwise user is an ACL user allowed every command, key and
// channel, and the default user is disabled, so nobody else gets in. Client authenticates as user.
func WithAuth(user, password string) Option {
	return func(s *Server) {
		if user == "default" {
			user = ""
		}
		s.user, s.pass = user, password
		s.probe.user, s.probe.password = user, password
		if user == "" {
			s.conf = append(s.conf, "requirepass "+confQuote(password))
			return
		}
		s.conf = append(s.conf,
			"user default off",
			fmt.Sprintf("user %s on %s ~* &* +@all", confQuote(user), confQuote(">"+password)))
	}
}

// Start runs a standalone redis-server on a free loopback port and waits until it answers PING. The server
// is killed when the test ends. Start calls tb.Fatal if redis-server is not on PATH or does not start.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	return start(tb, false, opts...)
}

// WithArgs passes extra redis-server command-line arguments (configuration directives), passed again
// on every Restart, e.g. WithArgs("--maxmemory-policy", "allkeys-lru").
func WithArgs(args ...string) Option {
	return func(s *Server) { s.args = append(s.args, args...) }
}

// StartArgs is Start with extra redis-server command-line arguments (see WithArgs), e.g.
//
//	redistest.StartArgs(t, "--maxmemory-policy", "allkeys-lru")
//	redistest.StartArgs(t, "--user", "app", "on", ">secret", "~app:*", "+@all", "-evalsha")
//
// The second defines an ACL user "app" with password "secret" (the default user stays open).
func StartArgs(tb testing.TB, args ...string) *Server {
	tb.Helper()
	return start(tb, false, WithArgs(args...))
}

func start(tb testing.TB, cluster bool, opts ...Option) *Server {
	tb.Helper()
	bin := lookPath(tb, serverBinary)
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir()}
	for _, o := range opts {
		o(s)
	}
	tb.Cleanup(s.Stop) // runs before TempDir's cleanup removes the directory
	var lastErr error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		s.port = port
		if cluster {
			if s.bus, err = freePort(); err != nil {
				tb.Fatalf("redistest: %v", err)
			}
			s.extra = []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
				"--cluster-port", strconv.Itoa(s.bus),
				"--cluster-node-timeout", "5000",
			}
		}
		lastErr = s.launch()
		if errors.Is(lastErr, errPortTaken) {
			continue // another process took the port between our probe and redis-server's bind
		}
		if lastErr != nil {
			tb.Fatalf("redistest: %v", lastErr)
		}
		return s
	}
	tb.Fatalf("redistest: no free port after %d attempts: %v", portAttempts, lastErr)
	return nil
}

// Addr returns the server's address, "127.0.0.1:<port>". It stays the same across Restart.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Stop kills the server process (SIGKILL, like a crash) and waits for it to exit. All data is lost. Stop is
// idempotent and also runs when the test ends.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.cmd.Process.Kill()
	<-s.proc.done
	s.proc = nil
}

// Restart stops the server if it is running and starts a fresh, empty one on the same port; clients
// reconnect to it by themselves. It calls Fatal on the test that started the server if the port has been
// taken in the meantime or the server does not start, so it must run on that test's goroutine.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		s.tb.Fatalf("redistest: restart on %s: %v", s.Addr(), err)
	}
}

// Client returns a new client for the server with ContextTimeoutEnabled set, so a context deadline bounds
// every call, and with the server's TLS and credentials. It is closed when the test that started the server
// ends.
func (s *Server) Client() *redis.Client {
	opts := &redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true, Username: s.user, Password: s.pass}
	if s.certs != nil {
		opts.TLSConfig = s.certs.ClientConfig(false)
	}
	rdb := redis.NewClient(opts)
	s.tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// ClientAs is Client logged in as the ACL user username with password (see StartArgs for defining one).
func (s *Server) ClientAs(username, password string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: username, Password: password, ContextTimeoutEnabled: true})
	s.tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// launch starts redis-server on s.port and waits until it answers; the caller holds no lock.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.port == 6379 {
		return errPortTaken // never touch the machine's general-purpose Redis
	}
	logPath := filepath.Join(s.dir, "redis.log")
	// Start each run with an empty log, so a failure reports this run's lines only.
	if err := os.WriteFile(logPath, nil, 0o600); err != nil {
		return err
	}
	var args []string
	if len(s.conf) > 0 {
		// A configuration file must come first; the command line overrides it.
		confPath := filepath.Join(s.dir, "options.conf")
		if err := os.WriteFile(confPath, []byte(strings.Join(s.conf, "\n")+"\n"), 0o600); err != nil {
			return err
		}
		args = append(args, confPath)
	}
	if s.certs != nil {
		args = append(args,
			"--port", "0", // no plain TCP
			"--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", s.certs.ServerCertFile,
			"--tls-key-file", s.certs.ServerKeyFile,
			"--tls-ca-cert-file", s.certs.CAFile,
			"--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", strconv.Itoa(s.port))
	}
	args = append(args,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", logPath)
	args = append(args, s.extra...)
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { // owned by p: ends when the process exits; Stop kills it and waits on done
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := waitReady(s.probe, s.Addr(), p, logPath); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return err
	}
	s.proc = p
	return nil
}

// waitReady polls addr until the server answers PING and reports p's pid (so a different server that
// happens to hold the port is never mistaken for ours).
func waitReady(pr probe, addr string, p *process, logPath string) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if pid, err := serverPID(pr, addr); err == nil {
			if pid != p.cmd.Process.Pid {
				return errPortTaken // someone else's server answers on this port; ours will fail to bind
			}
			return nil
		}
		select {
		case <-p.done:
			log := readLog(logPath)
			if strings.Contains(log, "Address already in use") {
				return errPortTaken
			}
			if strings.Contains(log, "Bad directive") && strings.Contains(log, "tls-") {
				return fmt.Errorf("%s on %s: %s; log:\n%s", serverBinary, addr, tlsHint, log)
			}
			return fmt.Errorf("%s on %s exited (%v) before answering PING; log:\n%s", serverBinary, addr, p.err, log)
		case <-deadline.C:
			return fmt.Errorf("%s on %s did not answer PING within %v; log:\n%s", serverBinary, addr, startTimeout, readLog(logPath))
		case <-tick.C:
		}
	}
}

// serverPID sends PING and INFO server and returns the process_id the server reports.
func serverPID(pr probe, addr string) (int, error) {
	if _, err := pr.command(addr, "PING"); err != nil {
		return 0, err
	}
	info, err := pr.command(addr, "INFO", "server")
	if err != nil {
		return 0, err
	}
	v, ok := infoField(info, "process_id")
	if !ok {
		return 0, errors.New("no process_id in INFO server")
	}
	return strconv.Atoi(v)
}

// freePort asks the kernel for a free loopback TCP port. The port is released before it is used, so the
// caller must handle losing it to another process (start retries on errPortTaken).
func freePort() (int, error) {
	for range portAttempts {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if port != 6379 {
			return port, nil
		}
	}
	return 0, errors.New("find a free port: kernel keeps returning 6379")
}

func lookPath(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("redistest: %s not found on PATH (%v); these tests need a real Redis: %s", name, err, installHint)
	}
	return p
}

func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const limit = 4 << 10
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return string(b)
}
