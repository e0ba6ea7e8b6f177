package topapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultGateway is the production TOP gateway (HTTPS).
const DefaultGateway = "https://eco.taobao.com/router/rest"

// Defaults applied by [New] to zero-valued [Config] fields.
const (
	DefaultSignMethod   = SignHMACSHA256
	DefaultTimeout      = 10 * time.Second
	DefaultMaxBodyBytes = 4 << 20
)

// Timestamp layout of the timestamp parameter, always in GMT+8.
const timestampLayout = "2006-01-02 15:04:05"

var gmt8 = time.FixedZone("GMT+8", 8*3600)

// Config configures a [Client]. Zero values mean the documented defaults.
// Its String, GoString and Format methods redact the app secret, so a Config
// can be logged.
type Config struct {
	// Gateway is the gateway URL. Default [DefaultGateway].
	Gateway string
	// AppKey identifies the application. Required.
	AppKey string
	// AppSecret signs every request. Required; a secret.
	AppSecret string
	// SignMethod is md5, hmac or hmac-sha256. Default hmac-sha256.
	SignMethod string
	// PartnerID, when set, is sent as partner_id (e.g. "ordersync-1.2.0").
	PartnerID string
	// Timeout bounds one gateway call, from sending the request to reading
	// the whole answer; it does not include waiting for flow control.
	// Default 10s.
	Timeout time.Duration
	// HTTPClient's Transport sends the requests. Nil means a transport of
	// its own tuned for hundreds of concurrent calls to one host (HTTP/1.1
	// keep-alive, 512 idle connections per host). The client's Timeout,
	// redirect policy and cookie jar are not used: the per-call Timeout
	// above applies, and the gateway is called at exactly its URL (a
	// redirect answer is a Credentials error naming where it points).
	HTTPClient *http.Client
	// MaxBodyBytes bounds the size of an answer; a longer one fails the
	// call (not retryable). Default 4 MiB.
	MaxBodyBytes int64
	// QPS is the rate limit per (app key, method), in calls per second.
	// 0 means unlimited.
	QPS float64
	// Burst is the number of calls the limiter lets through at once.
	// Default 1 when QPS is set; ignored when QPS is 0.
	Burst int
	// MaxBanWait is the longest ban (code 7, "This ban will last for N
	// more seconds") that calls wait out; a longer ban fails calls at once
	// with an error matching [ErrLongBan]. Default 0: no ban is waited out.
	MaxBanWait time.Duration
	// RetryableSubCodes lists isv.* sub-codes that really mean "try later"
	// (e.g. "isv.trade-service-rejection"); errors carrying them are
	// retryable. Default none.
	RetryableSubCodes []string
	// Now is the clock for the timestamp parameter. Default time.Now. Bans
	// and rate limits always run on the real (monotonic) clock.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Gateway == "" {
		c.Gateway = DefaultGateway
	}
	if c.SignMethod == "" {
		c.SignMethod = DefaultSignMethod
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.QPS > 0 && c.Burst == 0 {
		c.Burst = 1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first invalid field, naming it. Zero values are valid
// and stand for the defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := checkGateway(c.Gateway); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	switch {
	case c.AppKey == "":
		return errors.New("app key: required")
	case c.AppSecret == "":
		return errors.New("app secret: required")
	case !validSignMethod(c.SignMethod):
		return fmt.Errorf("sign method: %q is not md5, hmac or hmac-sha256", c.SignMethod)
	case c.Timeout < 0:
		return fmt.Errorf("timeout: %s is negative", c.Timeout)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("max body bytes: %d is negative", c.MaxBodyBytes)
	case c.QPS < 0:
		return fmt.Errorf("qps: %g is negative", c.QPS)
	case c.Burst < 0:
		return fmt.Errorf("burst: %d is negative", c.Burst)
	case c.MaxBanWait < 0:
		return fmt.Errorf("max ban wait: %s is negative", c.MaxBanWait)
	}
	for _, sc := range c.RetryableSubCodes {
		if strings.TrimSpace(sc) == "" {
			return errors.New("retryable sub codes: empty entry")
		}
	}
	return nil
}

func checkGateway(gateway string) error {
	u, err := url.Parse(gateway)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", redactURL(gateway))
	}
	return nil
}

// String describes c with the app secret redacted.
func (c Config) String() string {
	secret := ""
	if c.AppSecret != "" {
		secret = "[redacted]"
	}
	httpClient := "default"
	if c.HTTPClient != nil {
		httpClient = "custom"
	}
	return fmt.Sprintf("topapi.Config{Gateway:%q AppKey:%q AppSecret:%q SignMethod:%q PartnerID:%q "+
		"Timeout:%s HTTPClient:%s MaxBodyBytes:%d QPS:%g Burst:%d MaxBanWait:%s RetryableSubCodes:%q}",
		redactURL(c.Gateway), c.AppKey, secret, c.SignMethod, c.PartnerID, c.Timeout, httpClient,
		c.MaxBodyBytes, c.QPS, c.Burst, c.MaxBanWait, c.RetryableSubCodes)
}

// GoString is String, so %#v redacts too.
func (c Config) GoString() string { return c.String() }

// Format writes String for every verb, so no verb prints the secret.
func (c Config) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// redactURL drops user info, query and fragment from a URL for display.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[invalid URL]"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// Client calls the TOP gateway. It is safe for concurrent use; its methods
// never print the app secret or session keys (String, GoString and Format
// redact them).
type Client struct {
	gateway   string
	appKey    string
	keys      *keys // shared with the clients made by WithGateway
	partnerID string
	timeout   time.Duration
	maxBody   int64
	maxBan    time.Duration
	retryISV  map[string]bool
	now       func() time.Time
	hc        *http.Client
	own       *http.Transport   // the default transport, when HTTPClient was nil
	rt        http.RoundTripper // hc's transport: the requests are sent with it
	flow      *flow
	signName  string
}

// keys holds the signer of the current app secret; SetAppSecret replaces it.
type keys struct{ signer atomic.Pointer[signer] }

// New returns a Client for cfg, or the error of cfg.Validate.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("topapi config: %w", err)
	}
	cfg = cfg.withDefaults()
	c := &Client{
		gateway:   cfg.Gateway,
		appKey:    cfg.AppKey,
		keys:      new(keys),
		partnerID: cfg.PartnerID,
		timeout:   cfg.Timeout,
		maxBody:   cfg.MaxBodyBytes,
		maxBan:    cfg.MaxBanWait,
		retryISV:  make(map[string]bool, len(cfg.RetryableSubCodes)),
		now:       cfg.Now,
		hc:        cfg.HTTPClient,
		flow:      newFlow(cfg.QPS, cfg.Burst),
		signName:  cfg.SignMethod,
	}
	for _, sc := range cfg.RetryableSubCodes {
		c.retryISV[strings.TrimSpace(sc)] = true
	}
	c.keys.signer.Store(newSigner(cfg.AppSecret, cfg.SignMethod))
	if c.hc == nil {
		c.own = NewTransport()
		c.hc = &http.Client{Transport: c.own}
	}
	c.rt = c.hc.Transport
	if c.rt == nil {
		c.rt = http.DefaultTransport
	}
	return c, nil
}

// SetAppSecret makes every later call sign with secret (a rotated or corrected
// app secret), for this client and every client made from it with WithGateway.
// Calls already signed keep the old secret. It returns an error for an empty
// secret.
func (c *Client) SetAppSecret(secret string) error {
	if secret == "" {
		return errors.New("app secret: required")
	}
	c.keys.signer.Store(newSigner(secret, c.signName))
	return nil
}

// AppKey returns the app key the client calls with.
func (c *Client) AppKey() string { return c.appKey }

// Gateway returns the gateway URL without user info, query or fragment.
func (c *Client) Gateway() string { return redactURL(c.gateway) }

// NewTransport returns the transport a Client uses when Config.HTTPClient is
// nil: HTTP/1.1 keep-alive with enough idle connections for hundreds of
// concurrent calls to one gateway. Callers that wrap the transport (tracing)
// start from it.
func NewTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   5 * time.Second,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		Protocols:             new(http.Protocols),
	}
	t.Protocols.SetHTTP1(true)
	return t
}

// WithGateway returns a Client that calls gateway instead, for channels with
// a gateway of their own. It shares c's HTTP client, app secret (also when
// rotated), rate limiters and ban state (a ban is per app key, whatever the
// gateway). It
// returns an error for a gateway that is not an absolute http(s) URL.
func (c *Client) WithGateway(gateway string) (*Client, error) {
	if err := checkGateway(gateway); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	cc := *c
	cc.gateway = gateway
	return &cc, nil
}

// CloseIdleConnections closes the idle connections of the client's
// transport (of the default one, or of Config.HTTPClient's).
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// String describes c without its secret.
func (c *Client) String() string {
	return fmt.Sprintf("topapi.Client{gateway:%q app_key:%q sign_method:%q timeout:%s}",
		redactURL(c.gateway), c.appKey, c.signName, c.timeout)
}

// GoString is String, so %#v redacts too.
func (c *Client) GoString() string { return c.String() }

// Format writes String for every verb.
func (c *Client) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// Call signs req, waits for flow control (the app key's ban, the method's
// rate limit), posts it to the gateway and returns the inner object of the
// "<method>_response" envelope. Every failure is an [*Error]: a platform
// error_response, an HTTP error status, a transport failure or timeout
// (Err set, retryable), an answer that is too long or unreadable, or an
// invalid request (not retryable). If ctx ends while the call waits for flow
// control, the error wraps ctx.Err(). Once the request is being sent, ctx no
// longer aborts it: it runs until the answer or Config.Timeout, so an answer
// the platform is sending — to a call it may have executed — is never thrown
// away (values and the trace of ctx are kept). Call does not retry; every call
// signs afresh with a new timestamp.
func (c *Client) Call(ctx context.Context, req Request) (Response, error) {
	if req.Method == "" {
		return Response{}, &Error{Msg: "request without method"}
	}
	if e := c.flow.wait(ctx, c.appKey, req.Method, c.maxBan); e != nil {
		return Response{}, e
	}
	sg := c.keys.signer.Load()
	body, err := c.encode(sg, req, c.now())
	if err != nil {
		return Response{}, &Error{Msg: err.Error()}
	}
	resp, e := c.post(ctx, req.Method, body)
	if e != nil {
		c.scrub(e, sg.secret, req.Session)
		if d := e.retryAfter; d > 0 && e.isFlowControl() {
			c.flow.ban(c.appKey, req.Method, e.BanScope(), d, e.SubCode)
			e.longBan = d > c.maxBan
		}
		return Response{}, e
	}
	return resp, nil
}

// reserved are the system parameter names a business parameter may not use.
var reserved = map[string]bool{
	"method": true, "app_key": true, "timestamp": true, "v": true, "format": true,
	"sign_method": true, "sign": true, "session": true, "partner_id": true,
	"target_app_key": true, "simplify": true,
}

// encode builds the signed form body of req: system and non-blank business
// parameters sorted by name, URL-encoded, with the signature last.
func (c *Client) encode(sg *signer, req Request, now time.Time) ([]byte, error) {
	var ts [len(timestampLayout)]byte
	ps := make([]param, 0, len(req.Params)+8)
	ps = append(ps,
		param{"method", req.Method},
		param{"app_key", c.appKey},
		param{"timestamp", string(now.In(gmt8).AppendFormat(ts[:0], timestampLayout))},
		param{"v", "2.0"},
		param{"format", "json"},
		param{"sign_method", c.signName},
	)
	if !isBlank(req.Session) {
		ps = append(ps, param{"session", req.Session})
	}
	if c.partnerID != "" {
		ps = append(ps, param{"partner_id", c.partnerID})
	}
	for k, v := range req.Params {
		if reserved[k] || k == "" {
			return nil, fmt.Errorf("business parameter %q is reserved", k)
		}
		if !isBlank(v) {
			ps = append(ps, param{k, v})
		}
	}
	sortParams(ps)
	n := len("sign=") + 2*64
	for _, p := range ps {
		n += queryEscapedLen(p.k) + 1 + queryEscapedLen(p.v) + 1
	}
	body := make([]byte, 0, n)
	for _, p := range ps {
		body = appendQueryEscape(body, p.k)
		body = append(body, '=')
		body = appendQueryEscape(body, p.v)
		body = append(body, '&')
	}
	body = append(body, "sign="...)
	return sg.sum(body, ps), nil
}

// post sends one signed body and interprets the answer.
func (c *Client) post(ctx context.Context, method string, body []byte) (Response, *Error) {
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	// Whether the whole request left this process decides whether a failed
	// call may have been executed (Error.MayHaveExecuted).
	var wrote atomic.Bool
	traceCtx := httptrace.WithClientTrace(callCtx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) { wrote.Store(i.Err == nil) },
	})
	hreq, err := http.NewRequestWithContext(traceCtx, http.MethodPost, c.gateway, bytes.NewReader(body))
	if err != nil {
		return Response{}, &Error{Msg: "build request: invalid gateway URL"}
	}
	hreq.Header = http.Header{
		"Content-Type": {"application/x-www-form-urlencoded;charset=UTF-8"},
		"Accept":       {"application/json"},
		"User-Agent":   {"ordersync-topapi"},
	}
	// The transport, not the client: the gateway is called at exactly its URL
	// (a redirect is an error naming where it points, below), and the
	// client's per-request header copy for redirects is saved.
	hresp, err := c.rt.RoundTrip(hreq)
	if err != nil {
		e := c.transportError(ctx, callCtx, "post", 0, err)
		e.sent = wrote.Load()
		return Response{}, e
	}
	defer closeBody(hresp.Body)
	if hresp.StatusCode >= 300 && hresp.StatusCode <= 399 {
		return Response{}, &Error{HTTPStatus: hresp.StatusCode, sent: true, credentials: true,
			Msg: fmt.Sprintf("%s: the gateway URL redirects to %s; set it to the final URL", http.StatusText(hresp.StatusCode), redirectTarget(hresp))}
	}
	data, err := readBounded(hresp.Body, hresp.ContentLength, c.maxBody)
	if errors.Is(err, errTooLong) {
		return Response{}, &Error{
			HTTPStatus: hresp.StatusCode,
			Msg:        fmt.Sprintf("answer longer than %d bytes", c.maxBody),
			sent:       true,
			answered:   hresp.StatusCode >= 200 && hresp.StatusCode <= 299,
		}
	}
	if err != nil {
		e := c.transportError(ctx, callCtx, "read answer", hresp.StatusCode, err)
		e.sent = true
		return Response{}, e
	}
	return c.parse(method, hresp.StatusCode, data)
}

// transportError describes a failure to get an answer: the caller's context
// ended, the call timed out, or the network failed. It never includes the
// request URL (url.Error does), only the cause.
func (c *Client) transportError(ctx, callCtx context.Context, op string, status int, err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	e := &Error{HTTPStatus: status, retryable: true}
	switch {
	case ctx.Err() != nil:
		e.Msg, e.Err = op+": call interrupted", ctx.Err()
	case errors.Is(callCtx.Err(), context.DeadlineExceeded):
		e.Msg, e.Err = fmt.Sprintf("%s: no answer within %s", op, c.timeout), context.DeadlineExceeded
	default:
		e.Msg, e.Err = op, err
	}
	return e
}

var errTooLong = errors.New("answer too long")

// readBounded reads r to the end, failing with errTooLong past max bytes.
func readBounded(r io.Reader, contentLength, max int64) ([]byte, error) {
	if contentLength > max {
		return nil, errTooLong
	}
	if contentLength >= 0 {
		// Exactly the announced length: bytes.Buffer.ReadFrom would grow past it to make room for
		// a read that finds the end.
		buf := make([]byte, contentLength)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	var buf bytes.Buffer
	buf.Grow(1024)
	n, err := buf.ReadFrom(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, errTooLong
	}
	return buf.Bytes(), nil
}

// closeBody drains a little of what is left, so the connection can be
// reused, and closes the body.
func closeBody(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, 64<<10))
	_ = b.Close()
}

// errorResponse is the platform's error_response object.
type errorResponse struct {
	Code      flexInt `json:"code"`
	Msg       string  `json:"msg"`
	SubCode   string  `json:"sub_code"`
	SubMsg    string  `json:"sub_msg"`
	RequestID string  `json:"request_id"`
}

// flexInt decodes a code sent as a JSON number or a numeric string.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return nil // a non-numeric code: keep 0 and classify by sub_code
	}
	*f = flexInt(n)
	return nil
}

// parse interprets an answer: an error_response, the method's envelope, or
// an HTTP error status.
func (c *Client) parse(method string, status int, data []byte) (Response, *Error) {
	var top map[string]json.RawMessage
	jsonErr := json.Unmarshal(data, &top)
	if raw, ok := top["error_response"]; ok && jsonErr == nil {
		var er errorResponse
		if err := json.Unmarshal(raw, &er); err == nil {
			e := &Error{
				Code: int(er.Code), Msg: er.Msg, SubCode: er.SubCode, SubMsg: er.SubMsg,
				RequestID: er.RequestID, HTTPStatus: status, sent: true,
			}
			e.classify(c.retryISV)
			return Response{}, e
		}
	}
	if status < 200 || status > 299 {
		e := &Error{HTTPStatus: status, Msg: httpStatusMsg(status, data), sent: true}
		e.classify(c.retryISV)
		return Response{}, e
	}
	// A 2xx answer the client cannot read is not the gateway's: the URL points
	// elsewhere (a proxy page, another service). Nothing was executed.
	if jsonErr != nil {
		return Response{}, &Error{HTTPStatus: status, Msg: "answer is not a JSON object", sent: true, credentials: true}
	}
	inner, ok := envelope(top, method)
	if !ok {
		return Response{}, &Error{HTTPStatus: status, Msg: fmt.Sprintf("answer has no %s object", envelopeKey(method)), sent: true, credentials: true}
	}
	var meta struct {
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(inner, &meta); err != nil {
		return Response{}, &Error{HTTPStatus: status, Msg: fmt.Sprintf("%s is not a JSON object", envelopeKey(method)), sent: true, answered: true}
	}
	return Response{Body: inner, RequestID: meta.RequestID}, nil
}

// envelopeKey is the key of method's success envelope, e.g.
// "alibaba_omni_saas_order_create_response".
func envelopeKey(method string) string {
	return strings.ReplaceAll(method, ".", "_") + "_response"
}

// envelope finds the inner object of method's answer: under its envelope
// key, under the key without "taobao_" (as taobao.* methods answer), or under
// the only "*_response" key there is (as the Java SDK reads it).
func envelope(top map[string]json.RawMessage, method string) (json.RawMessage, bool) {
	key := envelopeKey(method)
	if raw, ok := top[key]; ok {
		return raw, true
	}
	if raw, ok := top[strings.TrimPrefix(key, "taobao_")]; ok {
		return raw, true
	}
	var found json.RawMessage
	n := 0
	for k, raw := range top {
		if strings.HasSuffix(k, "_response") {
			found, n = raw, n+1
		}
	}
	return found, n == 1
}

// redirectTarget is where a redirect answer points, without its query.
func redirectTarget(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return "an unknown location"
	}
	loc.RawQuery, loc.Fragment, loc.User = "", "", nil
	return loc.String()
}

// httpStatusMsg describes an HTTP error status, with the start of a textual
// body when there is one.
func httpStatusMsg(status int, body []byte) string {
	msg := http.StatusText(status)
	snippet := strings.Join(strings.Fields(strings.ToValidUTF8(string(body[:min(len(body), 120)]), "")), " ")
	if snippet != "" {
		msg += ": " + snippet
	}
	return msg
}

// scrub removes the secret and the session key from an error's text, in
// case the platform (or a proxy) echoed them. Values shorter than 4 bytes
// are left alone: they would mangle the text and are no real secret.
func (c *Client) scrub(e *Error, secret, session string) {
	for _, s := range [...]string{secret, session} {
		if len(s) < 4 {
			continue
		}
		e.Msg = strings.ReplaceAll(e.Msg, s, "[redacted]")
		e.SubCode = strings.ReplaceAll(e.SubCode, s, "[redacted]")
		e.SubMsg = strings.ReplaceAll(e.SubMsg, s, "[redacted]")
		if e.Err != nil && strings.Contains(e.Err.Error(), s) {
			e.Err = &redactedError{msg: strings.ReplaceAll(e.Err.Error(), s, "[redacted]"), err: e.Err}
		}
	}
}

// redactedError hides secrets from a cause's text but keeps it for
// errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (r *redactedError) Error() string { return r.msg }
func (r *redactedError) Unwrap() error { return r.err }
