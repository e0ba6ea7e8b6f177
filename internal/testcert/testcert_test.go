package testcert_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"testing"

	"github.com/ordersync/ordersync/internal/testcert"
)

// handshake runs one TLS handshake over loopback TCP and returns the client's and the server's errors.
func handshake(t *testing.T, server, client *tls.Config, addr string) (clientErr, serverErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() { // owned by this call: ends after one connection, waited on below
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		err = c.(*tls.Conn).Handshake()
		if err == nil {
			_, err = io.WriteString(c, "x")
		}
		done <- err
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	c, err := tls.Dial("tcp", net.JoinHostPort(addr, port), client)
	if err == nil {
		_, err = io.ReadFull(c, make([]byte, 1))
		c.Close()
	}
	return err, <-done
}

func TestHandshake(t *testing.T) {
	s, err := testcert.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := testcert.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		server        *tls.Config
		client        *tls.Config
		addr          string // the client dials this host; Go verifies it against the certificate
		wantClientErr bool
		wantServerErr bool
	}{
		{"ip", s.ServerConfig(false), s.ClientConfig(false), "127.0.0.1", false, false},
		{"localhost", s.ServerConfig(false), s.ClientConfig(false), "localhost", false, false},
		{"mutual", s.ServerConfig(true), s.ClientConfig(true), "127.0.0.1", false, false},
		{"mutual without client certificate", s.ServerConfig(true), s.ClientConfig(false), "127.0.0.1", true, true},
		{"client trusts another CA", s.ServerConfig(false), other.ClientConfig(false), "127.0.0.1", true, true},
		{"client certificate from another CA", s.ServerConfig(true), func() *tls.Config {
			c := other.ClientConfig(true)
			c.RootCAs = s.ClientConfig(false).RootCAs
			return c
		}(), "127.0.0.1", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientErr, serverErr := handshake(t, tt.server, tt.client, tt.addr)
			if got := clientErr != nil; got != tt.wantClientErr {
				t.Errorf("client error = %v, want error: %v", clientErr, tt.wantClientErr)
			}
			if got := serverErr != nil; got != tt.wantServerErr {
				t.Errorf("server error = %v, want error: %v", serverErr, tt.wantServerErr)
			}
		})
	}
}

func TestFiles(t *testing.T) {
	s, err := testcert.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The files are what a program configured by file names loads: the CA verifies the server
	// certificate, and each certificate goes with its key.
	caPEM, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("%s holds no PEM certificate", s.CAFile)
	}
	for _, pair := range [][2]string{{s.ServerCertFile, s.ServerKeyFile}, {s.ClientCertFile, s.ClientKeyFile}} {
		kp, err := tls.LoadX509KeyPair(pair[0], pair[1])
		if err != nil {
			t.Fatalf("load %s, %s: %v", pair[0], pair[1], err)
		}
		leaf, err := x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s does not verify against %s: %v", pair[0], s.CAFile, err)
		}
	}
	raw, err := os.ReadFile(s.ServerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(raw); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("%s: want one PKCS #8 \"PRIVATE KEY\" block", s.ServerKeyFile)
	}
	fi, err := os.Stat(s.ServerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("%s mode = %o, want 600", s.ServerKeyFile, got)
	}
}
