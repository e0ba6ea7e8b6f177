// Package testcert makes a throwaway certificate authority for tests: a CA, a server certificate for
// 127.0.0.1, ::1 and localhost, and a client certificate, all signed by that CA, held in memory and
// written as PEM files to a directory of the caller's (for programs configured by file names, such
// as the worker's kafka.tls.ca_file or redis-server's tls-cert-file).
//
// Keys are ECDSA P-256 and certificates are valid from an hour ago for a day: enough for any test,
// useless for anything else.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Set is a CA with one server and one client certificate. Its fields are not modified after [New],
// so a Set is safe for concurrent use.
type Set struct {
	// CAFile, ServerCertFile, ServerKeyFile, ClientCertFile and ClientKeyFile are the PEM files
	// New wrote (keys in PKCS #8).
	CAFile         string
	ServerCertFile string
	ServerKeyFile  string
	ClientCertFile string
	ClientKeyFile  string

	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

// New creates a CA, a server and a client certificate and writes them to dir as ca.pem,
// server.pem, server-key.pem, client.pem and client-key.pem (mode 0600).
func New(dir string) (*Set, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcert: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "ordersync test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, ca, err := issue(caTmpl, nil, caKey, caKey)
	if err != nil {
		return nil, err
	}
	s := &Set{
		CAFile:         filepath.Join(dir, "ca.pem"),
		ServerCertFile: filepath.Join(dir, "server.pem"),
		ServerKeyFile:  filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
		pool:           x509.NewCertPool(),
	}
	s.pool.AddCert(ca)
	if err := writePEM(s.CAFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaves := []struct {
		tmpl      *x509.Certificate
		cert, key string
		out       *tls.Certificate
	}{
		{&x509.Certificate{
			Subject:     pkix.Name{CommonName: "localhost"},
			DNSNames:    []string{"localhost"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}, s.ServerCertFile, s.ServerKeyFile, &s.server},
		{&x509.Certificate{
			Subject:     pkix.Name{CommonName: "ordersync test client"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, s.ClientCertFile, s.ClientKeyFile, &s.client},
	}
	for _, l := range leaves {
		l.tmpl.NotBefore, l.tmpl.NotAfter = caTmpl.NotBefore, caTmpl.NotAfter
		l.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("testcert: %w", err)
		}
		der, _, err := issue(l.tmpl, ca, key, caKey)
		if err != nil {
			return nil, err
		}
		pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("testcert: %w", err)
		}
		if err := writePEM(l.cert, "CERTIFICATE", der); err != nil {
			return nil, err
		}
		if err := writePEM(l.key, "PRIVATE KEY", pkcs8); err != nil {
			return nil, err
		}
		*l.out = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	return s, nil
}

// ServerConfig returns a new server-side TLS configuration presenting the server certificate. With
// requireClientCert, clients must present a certificate signed by the CA (mutual TLS).
func (s *Set) ServerConfig(requireClientCert bool) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{s.server}}
	if requireClientCert {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = s.pool
	}
	return c
}

// ClientConfig returns a new client-side TLS configuration trusting only the CA. With
// presentClientCert, it presents the client certificate.
func (s *Set) ClientConfig(presentClientCert bool) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: s.pool}
	if presentClientCert {
		c.Certificates = []tls.Certificate{s.client}
	}
	return c
}

// issue signs tmpl with signer (self-signed when parent is nil) and returns the DER and parsed form.
func issue(tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("testcert: %w", err)
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("testcert: sign %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("testcert: %w", err)
	}
	return der, cert, nil
}

func writePEM(path, typ string, der []byte) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("testcert: %w", err)
	}
	return nil
}
