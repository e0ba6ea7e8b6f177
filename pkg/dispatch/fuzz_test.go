package dispatch

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets: bad input must never panic, and everything Prepare accepts
// must survive the trip to the gateway simulator. Seed corpora are in
// testdata/fuzz/<target>/ (page examples and malformed variants) plus the
// f.Add calls below.

func FuzzDecodeEnvelope(f *testing.F) {
	for _, v := range SeedEvents() {
		f.Add(v)
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"event_id":"e","request":{}}`, `{"event_id":"e","request":{}} x`,
		`{"event_id":"e","request":` + strings.Repeat("[", 40), "{\"event_id\":\"\xff\",\"request\":{}}",
		`{"event_id":"e","event_id":"e","request":{}}`, `{"event_id":1e999,"request":{"a":1}}`,
		`{"event_id":"e","occurred_at":"2026-02-30T00:00:00Z","request":{}}`, `{"event_id":"\ud800","request":{}}`,
	} {
		f.Add([]byte(s))
	}
	r, err := NewRegistry(nil)
	if err != nil {
		f.Fatal(err)
	}
	channels := r.Channels()
	f.Fuzz(func(t *testing.T, value []byte) {
		env, err := DecodeEnvelope(value, 64<<10)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is a %T, not a *FieldError", err, err)
			}
			return
		}
		if n := utf8.RuneCountInString(env.EventID); n < 1 || n > MaxEventIDLen {
			t.Fatalf("accepted event_id of %d characters", n)
		}
		if !json.Valid(env.Request) || env.Request[0] != '{' {
			t.Fatalf("accepted request %q", env.Request)
		}
		for _, c := range channels {
			checkPrepare(t, r, c, env)
		}
	})
}

// checkPrepare runs Prepare and, when it succeeds, the invariants every
// prepared event must hold.
func checkPrepare(t *testing.T, r *Registry, c *Channel, env *Envelope) {
	t.Helper()
	p, err := c.Prepare(env)
	if err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("%s: error %v is a %T, not a *FieldError", c.ID, err, err)
		}
		return
	}
	if p.IdempotencyKey == "" || len(p.Fingerprint) != 64 || p.Request.Method != c.Method {
		t.Fatalf("%s: prepared %+v", c.ID, p)
	}
	for name, v := range p.Request.Params {
		if v == "" || !utf8.ValidString(v) {
			t.Fatalf("%s: param %s = %q", c.ID, name, v)
		}
	}
	// The simulator accepts what the worker sends, and keys it like Prepare
	// (unless the key came from the envelope).
	key, err := r.CheckParams(c.Method, p.Request.Params)
	if err != nil {
		t.Fatalf("%s: CheckParams rejects the prepared request: %v\nrequest %s\nparams %v", c.ID, err, env.Request, p.Request.Params)
	}
	if env.IdempotencyKey == "" && !c.spec.keyFromEvent && key != p.IdempotencyKey {
		t.Fatalf("%s: CheckParams key %q, Prepare key %q", c.ID, key, p.IdempotencyKey)
	}
	// The fingerprint ignores layout: the canonical request has the same.
	canon, err := appendCanonical(nil, env.Request)
	if err != nil {
		t.Fatalf("%s: canonical: %v", c.ID, err)
	}
	if fp, err := Fingerprint(canon, env.Seller); err != nil || fp != p.Fingerprint {
		t.Fatalf("%s: fingerprint of the canonical request differs", c.ID)
	}
}

func fuzzPrepare(f *testing.F, id string) {
	r, err := NewRegistry(nil)
	if err != nil {
		f.Fatal(err)
	}
	c, _ := r.ByID(id)
	env, err := DecodeEnvelope(SeedEvents()[id], 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(env.Request))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, request []byte) {
		checkPrepare(t, r, c, &Envelope{EventID: "fuzz", Request: request})
	})
}

func FuzzPrepareTmallAliauto(f *testing.F)      { fuzzPrepare(f, "tmall-aliauto") }
func FuzzPrepareOmniSaas(f *testing.F)          { fuzzPrepare(f, "omni-saas") }
func FuzzPrepareIcbuTrade(f *testing.F)         { fuzzPrepare(f, "icbu-trade") }
func FuzzPrepareMosHaiding(f *testing.F)        { fuzzPrepare(f, "mos-haiding") }
func FuzzPrepareDiantaoTripartite(f *testing.F) { fuzzPrepare(f, "diantao-tripartite") }

// FuzzCheckParams feeds the simulator rules arbitrary text for each
// channel's object parameter (the rest of the seed's parameters kept).
func FuzzCheckParams(f *testing.F) {
	r, err := NewRegistry(nil)
	if err != nil {
		f.Fatal(err)
	}
	ids := ChannelIDs()
	base := make([]map[string]string, len(ids))
	objParam := make([]string, len(ids))
	for i, id := range ids {
		c, _ := r.ByID(id)
		env, err := DecodeEnvelope(SeedEvents()[id], 0)
		if err != nil {
			f.Fatal(err)
		}
		p, err := c.Prepare(env)
		if err != nil {
			f.Fatal(err)
		}
		base[i] = p.Request.Params
		for _, fi := range c.spec.info.fields {
			if fi.kind == kindStruct || fi.kind == kindList {
				objParam[i] = fi.name
				break
			}
		}
		f.Add(uint8(i), p.Request.Params[objParam[i]])
		f.Add(uint8(i), "")
		f.Add(uint8(i), "{")
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		i := int(which) % len(ids)
		c, _ := r.ByID(ids[i])
		params := make(map[string]string, len(base[i]))
		for k, v := range base[i] {
			params[k] = v
		}
		params[objParam[i]] = value
		key, err := r.CheckParams(c.Method, params)
		if err != nil {
			var fe interface {
				FieldPath() string
				Missing() bool
			}
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) has no field path", err, err)
			}
			return
		}
		if key == "" {
			t.Fatal("accepted without a key")
		}
	})
}
