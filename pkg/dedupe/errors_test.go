package dedupe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
)

// serverError is a Redis error reply as go-redis returns it (it implements redis.Error).
type serverError string

func (e serverError) Error() string { return string(e) }
func (serverError) RedisError()     {}

func TestIsCorrupt(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"WRONGTYPE from GET", serverError("WRONGTYPE Operation against a key holding the wrong kind of value"), true},
		{"WRONGTYPE in a script, Redis 7", serverError("WRONGTYPE Operation against a key holding the wrong kind of value script: 3b20, on @user_script:29."), true},
		{"WRONGTYPE in a script, Redis 6", serverError("ERR Error running script (call to f_3b20): @user_script:29: WRONGTYPE Operation against a key holding the wrong kind of value"), true},
		{"malformed, Redis 7", serverError("ERR user_script:24: dedupe: malformed record script: 3b20, on @user_script:24."), true},
		{"malformed, Redis 6", serverError("ERR Error running script (call to f_3b20): @user_script:24: dedupe: malformed record"), true},
		{"malformed, miniredis", serverError("ERR Error compiling script (new function): :24: dedupe: malformed record stack traceback: ..."), true},
		{"wrapped", fmt.Errorf("claim x: %w", serverError("WRONGTYPE Operation against a key")), true},
		{"LOADING", serverError("LOADING Redis is loading the dataset in memory"), false},
		{"CLUSTERDOWN", serverError("CLUSTERDOWN The cluster is down"), false},
		{"TRYAGAIN", serverError("TRYAGAIN Multiple keys request during rehashing of slot"), false},
		{"READONLY", serverError("READONLY You can't write against a read only replica."), false},
		{"OOM", serverError("OOM command not allowed when used memory > 'maxmemory'. script: 3b20, on @user_script:30."), false},
		{"MASTERDOWN", serverError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), false},
		{"BUSY", serverError("BUSY Redis is busy running a script."), false},
		{"NOPERM", serverError("NOPERM this user has no permissions to run the 'evalsha' command"), false},
		{"NOSCRIPT", serverError("NOSCRIPT No matching script. Please use EVAL."), false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{"EOF", io.EOF, false},
		{"timeout", context.DeadlineExceeded, false},
		// Not a Redis error reply, so never corrupt, whatever its text says.
		{"plain error mentioning WRONGTYPE", errors.New("WRONGTYPE"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isCorrupt(tt.err); got != tt.want {
				t.Errorf("isCorrupt(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestParseClaimUnexpected(t *testing.T) {
	for _, reply := range []any{
		nil,
		"OK",
		int64(1),
		[]any{},
		[]any{int64(1), int64(1), "o", int64(5), ""},                    // the old five-element reply
		[]any{int64(1), int64(1), "o", int64(5), "", ""},                // the old six-element reply
		[]any{int64(1), int64(1), "o", int64(5), "", "", "", ""},        // too long
		[]any{"1", int64(1), "o", int64(5), "", "", ""},                 // state not an integer
		[]any{int64(1), int64(1), int64(7), int64(5), "", "", ""},       // owner not a string
		[]any{int64(1), int64(1), "o", int64(5), "", int64(0), ""},      // previous owner not a string
		[]any{int64(9), int64(1), "o", int64(5), "", "", ""},            // unknown state
		[]any{int64(1), int64(1), "o", "5", "", "", ""},                 // expiry not an integer
		[]any{int64(3), int64(1), "o", int64(0), []any{"x"}, "", ""},    // outcome not a string
		[]any{int64(1), "1", "o", int64(5), "", "", ""},                 // token not an integer
		[]any{int64(2), int64(1), "o", int64(5), "", nil, ""},           // previous owner nil
		[]any{int64(4), int64(0), "", int64(0), "", []byte("prev"), ""}, // bytes, not a string
		[]any{int64(1), int64(1), "o", int64(5), "", "", int64(1)},      // note not a string
	} {
		if c, err := parseClaim(reply); err == nil {
			t.Errorf("parseClaim(%#v) = %+v, want an error", reply, c)
		}
	}
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"7.0.15", true},
		{"5.0.0", true},
		{"5.0", true},
		{"5", true},
		{"5.0.14", true},
		{"6.2.6", true},
		{"10.0.0", true},
		{"255.255.255", true}, // an unstable build
		{"7.4-rc1", true},
		{"4.0.14", false},
		{"4.99.99", false},
		{"3.2.12", false},
		{"2.8.24", false},
		{"4", false},
	}
	for _, tt := range tests {
		got, err := versionAtLeast(tt.v, MinRedisVersion)
		if err != nil {
			t.Errorf("versionAtLeast(%q, %q): %v", tt.v, MinRedisVersion, err)
			continue
		}
		if got != tt.want {
			t.Errorf("versionAtLeast(%q, %q) = %v, want %v", tt.v, MinRedisVersion, got, tt.want)
		}
	}
	for _, v := range []string{"", "seven", "7.x.1", "1.2.3.4", "-1.0.0", "7..1"} {
		if got, err := versionAtLeast(v, MinRedisVersion); err == nil {
			t.Errorf("versionAtLeast(%q) = %v, want an error", v, got)
		}
	}
}

// checkInfo refuses what a real old or misconfigured server would report; the test machine's
// redis-server is new, so the refusals of old versions are checked on INFO text.
func TestCheckInfo(t *testing.T) {
	const base = "# Server\r\nredis_version:%s\r\n# Memory\r\nmaxmemory_policy:%s\r\n# Cluster\r\ncluster_enabled:%s\r\n"
	tests := []struct {
		name      string
		info      string
		clustered bool
		opts      PreflightOptions
		want      Check  // "" = accepted
		wantMsg   string // part of the message
	}{
		{name: "good", info: fmt.Sprintf(base, "7.0.15", "noeviction", "0")},
		{name: "minimum version", info: fmt.Sprintf(base, "5.0.0", "noeviction", "0")},
		{name: "Redis 4", info: fmt.Sprintf(base, "4.0.14", "noeviction", "0"), want: CheckVersion,
			wantMsg: "Redis 4.0.14 is too old: the dedupe scripts write after reading the server clock (TIME)"},
		{name: "Redis 3.2", info: fmt.Sprintf(base, "3.2.12", "noeviction", "0"), want: CheckVersion, wantMsg: "upgrade Redis to 5.0.0 or later"},
		{name: "no version", info: "# Memory\r\nmaxmemory_policy:noeviction\r\n", want: CheckVersion, wantMsg: "INFO has no redis_version"},
		{name: "garbled version", info: fmt.Sprintf(base, "x.y", "noeviction", "0"), want: CheckVersion, wantMsg: `redis_version "x.y"`},
		{name: "allkeys-lru", info: fmt.Sprintf(base, "7.0.15", "allkeys-lru", "0"), want: CheckEviction,
			wantMsg: "maxmemory-policy is allkeys-lru, which lets Redis evict dedupe records"},
		{name: "volatile-ttl", info: fmt.Sprintf(base, "7.2.4", "volatile-ttl", "0"), want: CheckEviction, wantMsg: "set maxmemory-policy noeviction"},
		{name: "volatile-lfu allowed", info: fmt.Sprintf(base, "7.2.4", "volatile-lfu", "0"), opts: PreflightOptions{AllowEviction: true}},
		{name: "no policy reported", info: "redis_version:7.0.0\r\n", want: CheckEviction, wantMsg: "maxmemory-policy is (not reported)"},
		{name: "cluster node through a single-node client", info: fmt.Sprintf(base, "7.0.15", "noeviction", "1"), want: CheckCluster,
			wantMsg: "this is a Redis Cluster node, reached through a single-node client"},
		{name: "cluster node through a cluster client", info: fmt.Sprintf(base, "7.0.15", "noeviction", "1"), clustered: true},
		{name: "single node through a cluster client", info: fmt.Sprintf(base, "7.0.15", "noeviction", "0"), clustered: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkInfo("10.0.0.7:6379", parseInfo(tt.info), tt.clustered, tt.opts)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("checkInfo: %v, want nil", err)
				}
				return
			}
			var pe *PreflightError
			if !errors.As(err, &pe) {
				t.Fatalf("checkInfo: %v, want a *PreflightError", err)
			}
			if pe.Check != tt.want || pe.Addr != "10.0.0.7:6379" {
				t.Errorf("check %q on %q, want %q on 10.0.0.7:6379", pe.Check, pe.Addr, tt.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.wantMsg) || !strings.HasPrefix(msg, "dedupe preflight: redis 10.0.0.7:6379: ") {
				t.Errorf("message %q, want it to start with the node and contain %q", msg, tt.wantMsg)
			}
		})
	}
}
