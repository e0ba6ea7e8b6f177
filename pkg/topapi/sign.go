package topapi

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Signature methods accepted by the gateway (the sign_method parameter).
const (
	SignMD5        = "md5"         // MD5(secret + s + secret)
	SignHMAC       = "hmac"        // HMAC-MD5(secret, s)
	SignHMACSHA256 = "hmac-sha256" // HMAC-SHA256(secret, s); the default
)

// Sign computes the TOP signature of params (system and business parameters
// together) with the app secret, as the official SDKs do: every parameter but
// "sign" whose value is not blank (empty or only whitespace, as in the Java
// SDK) is taken, sorted by name in byte order and concatenated as name+value
// with no separators, raw UTF-8; signMethod picks the digest ([SignMD5],
// [SignHMAC] or [SignHMACSHA256]); the result is upper-case hex. It returns
// an error only for an unknown signMethod. It is safe for concurrent use.
func Sign(params map[string]string, secret, signMethod string) (string, error) {
	if !validSignMethod(signMethod) {
		return "", fmt.Errorf("unknown sign method %q", signMethod)
	}
	ps := make([]param, 0, len(params))
	for k, v := range params {
		if k == "sign" || k == "" || isBlank(v) {
			continue
		}
		ps = append(ps, param{k, v})
	}
	sortParams(ps)
	var dst [64]byte
	return string(newSigner(secret, signMethod).sum(dst[:0], ps)), nil
}

func validSignMethod(m string) bool {
	return m == SignMD5 || m == SignHMAC || m == SignHMACSHA256
}

// param is one name/value pair of a request.
type param struct{ k, v string }

func sortParams(ps []param) {
	slices.SortFunc(ps, func(a, b param) int { return strings.Compare(a.k, b.k) })
}

// signer signs parameter lists with one secret and method. Its pools keep
// keyed HMAC states and scratch buffers, so a steady stream of calls signs
// without allocating. Make it with newSigner.
type signer struct {
	secret string
	method string
	macs   sync.Pool // *macState keyed with secret (hmac methods)
	bufs   sync.Pool // *[]byte scratch for the string to sign
}

func newSigner(secret, method string) *signer {
	s := &signer{secret: secret}
	s.method = method
	switch method {
	case SignHMAC:
		s.macs.New = func() any { return &macState{h: hmac.New(md5.New, []byte(secret))} }
	case SignHMACSHA256:
		s.macs.New = func() any { return &macState{h: hmac.New(sha256.New, []byte(secret))} }
	}
	s.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	return s
}

// sum appends the upper-case hex signature of ps (sorted, non-blank, without
// "sign") to dst.
func (s *signer) sum(dst []byte, ps []param) []byte {
	bp := s.bufs.Get().(*[]byte)
	buf := (*bp)[:0]
	if s.method == SignMD5 {
		buf = append(buf, s.secret...)
	}
	for _, p := range ps {
		buf = append(buf, p.k...)
		buf = append(buf, p.v...)
	}
	if s.method == SignMD5 {
		buf = append(buf, s.secret...)
		d := md5.Sum(buf)
		dst = appendUpperHex(dst, d[:])
	} else {
		m := s.macs.Get().(*macState)
		m.h.Reset()
		m.h.Write(buf)
		dst = appendUpperHex(dst, m.h.Sum(m.sum[:0]))
		s.macs.Put(m)
	}
	// The buffer held the secret (md5); clear it before it is reused.
	clear(buf)
	if cap(buf) <= 64<<10 {
		*bp = buf[:0]
		s.bufs.Put(bp)
	}
	return dst
}

// macState is a keyed HMAC with room for its sum, reused through a pool.
type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

const upperHex = "0123456789ABCDEF"

func appendUpperHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, upperHex[c>>4], upperHex[c&0x0f])
	}
	return dst
}

// isBlank reports whether v is empty or only whitespace in the sense of
// Java's Character.isWhitespace, which is what the official SDK tests before
// signing and sending a parameter.
func isBlank(v string) bool {
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if c != ' ' && (c < '\t' || c > '\r') && (c < 0x1c || c > 0x1f) {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(v[i:])
		if !javaSpace(r) {
			return false
		}
		i += n
	}
	return true
}

func javaSpace(r rune) bool {
	switch r {
	case '\u00a0', '\u2007', '\u202f': // no-break spaces are not whitespace in Java
		return false
	}
	return unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp)
}

// appendQueryEscape appends s escaped as url.QueryEscape would (form
// encoding: space as '+', everything but A-Z a-z 0-9 - _ . ~ as %XX),
// copying runs of unreserved bytes at once.
func appendQueryEscape(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !escaped[c] {
			continue
		}
		dst = append(dst, s[start:i]...)
		if c == ' ' {
			dst = append(dst, '+')
		} else {
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&0x0f])
		}
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// queryEscapedLen is len(appendQueryEscape(nil, s)).
func queryEscapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; escaped[c] && c != ' ' {
			n += 2
		}
	}
	return n
}

// escaped marks the bytes form encoding replaces: all but A-Z a-z 0-9 - _ . ~
var escaped = func() (t [256]bool) {
	for c := range t {
		t[c] = !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~')
	}
	return t
}()
