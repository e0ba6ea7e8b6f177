package dispatch

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ordersync/ordersync/pkg/topapi"
)

// Prepared is an event that passed validation, ready to be claimed and sent.
type Prepared struct {
	// Channel is the channel the event was prepared for.
	Channel *Channel
	// EventID and Seller are copied from the envelope.
	EventID string
	Seller  string
	// IdempotencyKey is the envelope's idempotency_key when given, else the
	// channel's default key (spec.key).
	IdempotencyKey string
	// Fingerprint is Fingerprint(envelope request, seller).
	Fingerprint string
	// Request is the gateway call: Method and Params are set; Session is
	// left empty for the caller to fill when Channel.NeedsSession.
	Request topapi.Request
}

// wireRequest is implemented by each channel's top-level request struct.
type wireRequest interface {
	// rules checks the page's documented relations that the check tags
	// cannot express. root is "request" for events, "" for form parameters.
	rules(root string) error
	// key derives the channel's default idempotency key from the request.
	key(root string) (string, error)
}

// spec is the static description of one channel.
type spec struct {
	id, method, topic string
	session           bool
	info              *structInfo
	// dedupedBy names the request field(s) by which the platform deduplicates calls; "" when
	// it has none.
	dedupedBy string
	// keyFromEvent: the default key is the envelope's event_id (the request
	// carries no natural key); the simulator then keys on the request hash.
	keyFromEvent bool
	interpret    func(body json.RawMessage) (string, *ErrorInfo)
}

func (s *spec) newRequest() (reflect.Value, wireRequest) {
	p := reflect.New(s.info.typ)
	return p.Elem(), p.Interface().(wireRequest)
}

// Prepare decodes and validates env.Request against the channel's API page,
// derives the idempotency key and the fingerprint, and builds the gateway
// request. A validation failure is a *[FieldError] whose path starts with
// "request." (or "event_id" when the key falls back to a missing event id);
// the first problem found is reported (in document order while decoding,
// then the page's cross-field rules). Prepare is safe for concurrent use.
func (c *Channel) Prepare(env *Envelope) (*Prepared, error) {
	if env == nil {
		return nil, &FieldError{Reason: "no event"}
	}
	v, req := c.spec.newRequest()
	if err := decodeObject(env.Request, "request", v, c.spec.info); err != nil {
		return nil, err
	}
	if err := req.rules("request"); err != nil {
		return nil, err
	}
	key := env.IdempotencyKey
	if key == "" {
		if c.spec.keyFromEvent {
			if key = env.EventID; key == "" {
				return nil, &FieldError{Path: "event_id", Reason: ReasonRequired}
			}
		} else {
			var err error
			if key, err = req.key("request"); err != nil {
				return nil, err
			}
		}
	}
	fp, err := Fingerprint(env.Request, env.Seller)
	if err != nil {
		return nil, err
	}
	params, err := buildParams(v, c.spec.info)
	if err != nil {
		return nil, err
	}
	return &Prepared{
		Channel:        c,
		EventID:        env.EventID,
		Seller:         env.Seller,
		IdempotencyKey: key,
		Fingerprint:    fp,
		Request:        topapi.Request{Method: c.Method, Params: params},
	}, nil
}

// Interpret turns the inner response object of a successful gateway call
// into a status. For APIs with a business flag (tmall-aliauto and icbu-trade
// result.success, diantao-tripartite is_success) it is StatusSucceeded when
// the flag is true, else StatusFailed with a KindBusiness error carrying the
// API's code and message (or saying the flag is missing), or a KindPlatform
// error when the body is not a JSON object. APIs without a flag (omni-saas,
// mos-haiding) always succeed. The caller keeps resp.Body as the outcome's
// response: it is never re-encoded, so large ids keep every digit. Safe for
// concurrent use.
func (c *Channel) Interpret(resp topapi.Response) (status string, e *ErrorInfo) {
	return c.spec.interpret(resp.Body)
}

// checkParams implements Rules.CheckParams for this channel.
func (c *Channel) checkParams(params map[string]string) (string, error) {
	v, req := c.spec.newRequest()
	if err := decodeParams(params, v, c.spec.info); err != nil {
		return "", err
	}
	if err := req.rules(""); err != nil {
		return "", err
	}
	if c.spec.keyFromEvent {
		return paramsDigest(params, c.spec.info)
	}
	key, err := req.key("")
	if err != nil {
		// The worker sends such a request only with an envelope key the
		// platform never sees; key on the content instead.
		return paramsDigest(params, c.spec.info)
	}
	return key, nil
}

// paramsDigest is "sha256:" + hex SHA-256 of the canonical JSON object of the
// business parameters (objects and lists as JSON, scalars as strings). For a
// request with one object parameter (icbu-trade) it is the canonical JSON of
// that object alone.
func paramsDigest(params map[string]string, si *structInfo) (string, error) {
	var doc []byte
	if len(si.fields) == 1 && (si.fields[0].kind == kindStruct || si.fields[0].kind == kindList) {
		doc = []byte(params[si.fields[0].name])
	} else {
		doc = append(doc, '{')
		for i := range si.fields {
			f := &si.fields[i]
			raw, ok := params[f.name]
			if !ok || raw == "" {
				continue
			}
			if len(doc) > 1 {
				doc = append(doc, ',')
			}
			doc = appendString(doc, f.name)
			doc = append(doc, ':')
			switch f.kind {
			case kindStruct, kindList, kindStringMap:
				doc = append(doc, raw...)
			default:
				doc = appendString(doc, raw)
			}
		}
		doc = append(doc, '}')
	}
	canon, err := appendCanonical(nil, doc)
	if err != nil {
		return "", fmt.Errorf("digest: %w", err)
	}
	sum := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// buildParams turns a validated top-level request into form parameters: one
// per present top-level field; objects and lists as compact JSON (snake_case
// names, absent optional fields omitted, HTML characters not escaped, as the
// official SDKs send them), scalars as strings. Empty values are omitted.
func buildParams(v reflect.Value, si *structInfo) (map[string]string, error) {
	params := make(map[string]string, len(si.fields))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range si.fields {
		f := &si.fields[i]
		fv := v.Field(f.index)
		if f.ptr {
			if fv.IsNil() {
				continue
			}
			fv = fv.Elem()
		}
		var s string
		switch f.kind {
		case kindString:
			s = fv.String()
		case kindInt:
			s = strconv.FormatInt(fv.Int(), 10)
		case kindBool:
			s = strconv.FormatBool(fv.Bool())
		default:
			if (f.kind == kindList || f.kind == kindStringMap) && fv.Len() == 0 {
				continue
			}
			buf.Reset()
			if err := enc.Encode(fv.Interface()); err != nil {
				return nil, fmt.Errorf("encode %s: %w", f.name, err)
			}
			s = string(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}))
		}
		if s != "" {
			params[f.name] = s
		}
	}
	return params, nil
}

// keyPart checks a request value used as (part of) an idempotency key.
func keyPart(root string, value *string, path ...string) (string, error) {
	if value == nil || strings.TrimSpace(*value) == "" {
		return "", &FieldError{Path: joinPath(root, path...), Reason: ReasonRequired}
	}
	if utf8.RuneCountInString(*value) > MaxIdempotencyKeyLen {
		return "", &FieldError{Path: joinPath(root, path...),
			Reason: fmt.Sprintf("longer than %d characters (it is the idempotency key)", MaxIdempotencyKeyLen)}
	}
	return *value, nil
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
