package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// probe sends single commands to servers over fresh connections, with TLS and AUTH when the server
// needs them. It is used for readiness polling, where a go-redis client (with its pool and retries)
// would only get in the way. The zero value speaks plain TCP without AUTH.
type probe struct {
	tls      *tls.Config // nil: plain TCP
	user     string      // "" with a password: AUTH <password> (the default user)
	password string      // "": no AUTH
}

// command sends one command to addr and returns a simple-string, integer or bulk reply as a string.
func (p probe) command(addr string, args ...string) (string, error) {
	d := &net.Dialer{Timeout: 200 * time.Millisecond}
	var conn net.Conn
	var err error
	if p.tls != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: p.tls}).Dial("tcp", addr)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	if p.password != "" {
		auth := []string{"AUTH", p.password}
		if p.user != "" {
			auth = []string{"AUTH", p.user, p.password}
		}
		if _, err := roundTrip(conn, r, auth); err != nil {
			return "", fmt.Errorf("AUTH: %w", err)
		}
	}
	return roundTrip(conn, r, args)
}

// roundTrip writes one command and reads its reply.
func roundTrip(w io.Writer, r *bufio.Reader, args []string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unexpected reply %q", line)
	}
}

// infoField returns the value of "name:value" in an INFO-style reply.
func infoField(info, name string) (string, bool) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), name+":"); ok {
			return v, true
		}
	}
	return "", false
}

// confQuote quotes s as one argument of a redis.conf line: printable ASCII as it is, `"` and `\`
// escaped, every other byte as \xHH (the escapes redis-server's sdssplitargs understands).
func confQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
