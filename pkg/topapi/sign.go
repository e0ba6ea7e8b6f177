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
	var s signer
	s.init(secret, signMethod)
	var dst [64]byte
	return string(s.sum(dst[:0], ps)), nil
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
// without allocating. The zero value is not usable; call init.
type signer struct {
	secret string
	method string
	macs   sync.Pool // hash.Hash keyed with secret (hmac methods)
	bufs   sync.Pool // *[]byte scratch for the string to sign
}

func (s *signer) init(secret, method string) {
	s.secret = secret
	s.method = method
	switch method {
	case SignHMAC:
		s.macs.New = func() any { return hmac.New(md5.New, []byte(secret)) }
	case SignHMACSHA256:
		s.macs.New = func() any { return hmac.New(sha256.New, []byte(secret)) }
	}
	s.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
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
	var digest []byte
	var raw [sha256.Size]byte
	switch s.method {
	case SignMD5:
		buf = append(buf, s.secret...)
		d := md5.Sum(buf)
		digest = append(raw[:0], d[:]...)
	default:
		h := s.macs.Get().(hash.Hash)
		h.Reset()
		h.Write(buf)
		digest = h.Sum(raw[:0])
		s.macs.Put(h)
	}
	// The buffer held the secret (md5); clear it before it is reused.
	clear(buf)
	if cap(buf) <= 64<<10 {
		*bp = buf[:0]
		s.bufs.Put(bp)
	}
	return appendUpperHex(dst, digest)
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
// encoding: space as '+', everything but A-Z a-z 0-9 - _ . ~ as %XX).
func appendQueryEscape(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case unreserved(c):
			dst = append(dst, c)
		case c == ' ':
			dst = append(dst, '+')
		default:
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&0x0f])
		}
	}
	return dst
}

// queryEscapedLen is len(appendQueryEscape(nil, s)).
func queryEscapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; !unreserved(c) && c != ' ' {
			n += 2
		}
	}
	return n
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}
