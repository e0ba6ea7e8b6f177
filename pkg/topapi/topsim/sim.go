// Package topsim is a TOP gateway simulator for tests, benchmarks and
// "worker dev", in the spirit of stripe-mock.
//
// A [Sim] is an http.Handler that checks what the real gateway checks — the
// system parameters, the signature (md5, hmac and hmac-sha256), the
// timestamp window, the session, the business parameters (through [Rules]) —
// and answers violations with the platform's error_response. Valid calls get
// a success answer shaped like the API page's, with platform ids derived
// from the idempotency key, so a repeated call gets the same id, as the real
// API's idempotency would give. It counts calls per (method, key) and injects
// [Faults]: latency, HTTP 503, isp.* errors, code-7 bans, hangs, and calls
// that are executed but whose connection is reset before the answer (the
// ambiguous failure a client cannot tell from a call that never arrived).
//
// Routes: any path but the ones below is the gateway (e.g. /router/rest);
// GET /stats returns [Stats] as JSON; POST /reset clears the counters and
// every ban; GET /faults and PUT /faults read and replace the [Faults];
// POST /ban starts a ban now ([Sim.Ban]), with a JSON body
//
//	{"seconds": 30}                                  every call of the app key, sub_code accesscontrol.limited-by-app-access-count
//	{"seconds": 30, "method": "alibaba.trade.order.create"}   that method only, sub_code accesscontrol.limited-by-app-api-access-count
//	{"seconds": 30, "sub_code": "accesscontrol.limited-by-api-access-count", "method": "..."}
//
// and answers the ban as JSON ({"seconds", "method", "sub_code", "until"}).
package topsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ordersync/ordersync/pkg/topapi"
)

// Rules knows the API methods the simulator serves. *dispatch.Registry
// implements it.
type Rules interface {
	// NeedsSession reports whether method needs a session; known=false for an unknown method.
	NeedsSession(method string) (needs, known bool)
	// CheckParams validates the business parameters of method as sent on the wire and returns the
	// idempotency key the platform would de-duplicate on. A failed field check is an error that
	// implements interface{ FieldPath() string; Missing() bool }.
	CheckParams(method string, params map[string]string) (key string, err error)
}

// fieldError is what Rules.CheckParams returns for a failed field check.
type fieldError interface {
	error
	FieldPath() string
	Missing() bool
}

// Config configures a [Sim].
type Config struct {
	// AppKey and AppSecret are the one application the simulator knows.
	// Both required. AppSecret is a secret: the simulator never writes it.
	AppKey    string
	AppSecret string
	// Sessions are the valid session keys. Empty means any non-blank
	// session is valid.
	Sessions []string
	// Rules knows the methods, their session needs and parameters.
	// Required.
	Rules Rules
	// Now is the gateway's clock (timestamp window, bans). Default
	// time.Now.
	Now func() time.Time
	// Seed seeds the random source of faults, jitter and request ids, so
	// a run can be repeated.
	Seed int64
	// Faults are injected from the start; see [Sim.SetFaults].
	Faults Faults
}

// Sim is the gateway simulator. It is safe for concurrent use. Call Close
// to end hangs and delays still in progress.
type Sim struct {
	appKey    string
	secret    string
	sessions  map[string]bool
	rules     Rules
	now       func() time.Time
	mux       *http.ServeMux
	done      chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex // guards everything below
	rng     *rand.Rand
	faults  Faults
	appBan  ban            // holds every call of the app key
	apiBans map[string]ban // by method: hold that method's calls
	counts  counters
}

// ban is a code-7 ban in force until until.
type ban struct {
	until   time.Time
	subCode string
}

// New returns a simulator for cfg.
func New(cfg Config) (*Sim, error) {
	switch {
	case cfg.AppKey == "":
		return nil, errors.New("topsim: app key required")
	case cfg.AppSecret == "":
		return nil, errors.New("topsim: app secret required")
	case cfg.Rules == nil:
		return nil, errors.New("topsim: rules required")
	}
	if err := cfg.Faults.Validate(); err != nil {
		return nil, fmt.Errorf("topsim: faults: %w", err)
	}
	s := &Sim{
		appKey:   cfg.AppKey,
		secret:   cfg.AppSecret,
		sessions: make(map[string]bool, len(cfg.Sessions)),
		rules:    cfg.Rules,
		now:      cfg.Now,
		done:     make(chan struct{}),
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		faults:   cfg.Faults.withDefaults(),
		apiBans:  make(map[string]ban),
		counts:   newCounters(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, k := range cfg.Sessions {
		if k != "" {
			s.sessions[k] = true
		}
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /stats", s.serveStats)
	s.mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Faults()) })
	s.mux.HandleFunc("PUT /faults", s.putFaults)
	s.mux.HandleFunc("POST /ban", s.postBan)
	s.mux.HandleFunc("/", s.gateway)
	return s, nil
}

// ServeHTTP serves the gateway and the control routes.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close ends hangs and delays in progress (they answer at once) and makes
// later ones end at once. It is idempotent.
func (s *Sim) Close() { s.closeOnce.Do(func() { close(s.done) }) }

// String describes the simulator without its secret.
func (s *Sim) String() string {
	return fmt.Sprintf("topsim.Sim{app_key:%q sessions:%d}", s.appKey, len(s.sessions))
}

// SetFaults replaces the injected faults from now on.
func (s *Sim) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	s.faults = f.withDefaults()
	s.mu.Unlock()
	return nil
}

// Faults returns the faults in force (with defaults applied).
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Stats returns a snapshot of the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.snapshot()
}

// Reset clears the counters and ends every ban; faults stay.
func (s *Sim) Reset() {
	s.mu.Lock()
	s.counts = newCounters()
	s.appBan = ban{}
	clear(s.apiBans)
	s.mu.Unlock()
}

// Longest ban [Sim.Ban] starts: the platform's longest, until the end of the day.
const maxBan = 24 * time.Hour

// Ban starts a code-7 ban now, by the gateway's clock, for d (rounded up to
// whole seconds, at most 24h), replacing any ban of the same scope. With
// method "" it holds every call of the app key; otherwise only the calls of
// method. subCode is the answer's sub_code, an accesscontrol.* code; ""
// means SubCodeAppLimit for an app-wide ban and SubCodeAppAPILimit for a
// per-API one. It returns the ban's end.
func (s *Sim) Ban(d time.Duration, method, subCode string) (time.Time, error) {
	if d <= 0 || d > maxBan {
		return time.Time{}, fmt.Errorf("ban length %s is not in (0, %s]", d, maxBan)
	}
	switch {
	case subCode != "":
		if err := checkBanSubCode(subCode); err != nil {
			return time.Time{}, fmt.Errorf("sub_code: %w", err)
		}
	case method == "":
		subCode = SubCodeAppLimit
	default:
		subCode = SubCodeAppAPILimit
	}
	d = (d + time.Second - 1) / time.Second * time.Second
	b := ban{until: s.now().Add(d), subCode: subCode}
	s.mu.Lock()
	defer s.mu.Unlock()
	if method == "" {
		s.appBan = b
	} else {
		s.apiBans[method] = b
	}
	return b.until, nil
}

func (s *Sim) postBan(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Seconds int    `json:"seconds"`
		Method  string `json:"method"`
		SubCode string `json:"sub_code"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "ban: "+err.Error(), http.StatusBadRequest)
		return
	}
	until, err := s.Ban(time.Duration(req.Seconds)*time.Second, req.Method, req.SubCode)
	if err != nil {
		http.Error(w, "ban: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.SubCode == "" {
		req.SubCode = SubCodeAppLimit
		if req.Method != "" {
			req.SubCode = SubCodeAppAPILimit
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"seconds": req.Seconds, "method": req.Method, "sub_code": req.SubCode, "until": until.Format(time.RFC3339Nano),
	})
}

func (s *Sim) serveStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Sim) putFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&f); err != nil {
		http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.SetFaults(f); err != nil {
		http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, s.Faults())
}

// roll is the random draw for one request.
type roll struct {
	delay     time.Duration
	hang      time.Duration // 0: no hang
	http503   bool
	ban       bool
	banFor    int
	banSub    string
	isp       bool
	drop      bool
	requestID string
}

func (s *Sim) roll() roll {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	r := roll{delay: f.Latency, banFor: f.BanSeconds, banSub: f.BanSubCode}
	if f.Jitter > 0 {
		r.delay += time.Duration(s.rng.Int64N(int64(f.Jitter)))
	}
	if s.chance(f.HangRate) {
		r.hang = f.Hang
	}
	r.http503 = s.chance(f.ErrorRate)
	r.ban = s.chance(f.BanRate)
	r.isp = s.chance(f.ISPRate)
	r.drop = s.chance(f.DropRate)
	const digits = "abcdefghijklmnopqrstuvwxyz0123456789"
	var id [12]byte
	for i := range id {
		id[i] = digits[s.rng.IntN(len(digits))]
	}
	r.requestID = string(id[:])
	return r
}

// chance draws true with probability p; s.mu must be held.
func (s *Sim) chance(p float64) bool { return p > 0 && s.rng.Float64() < p }

// apiError is an error_response.
type apiError struct {
	Code    int    `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code,omitempty"`
	SubMsg  string `json:"sub_msg,omitempty"`
}

func errf(code int, msg, subCode, subMsgFormat string, args ...any) *apiError {
	return &apiError{Code: code, Msg: msg, SubCode: subCode, SubMsg: fmt.Sprintf(subMsgFormat, args...)}
}

const maxForm = 10 << 20

// gateway serves one API call.
func (s *Sim) gateway(w http.ResponseWriter, r *http.Request) {
	rl := s.roll()
	if r.Method != http.MethodPost {
		s.answerError(w, rl, errf(9, "Http Action Not Allowed", "", "use POST, not %s", r.Method))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	p := make(map[string]string, len(r.Form))
	for k, vs := range r.Form {
		p[k] = vs[0]
	}
	method := p["method"]
	business := businessParams(p)
	needs, known := s.rules.NeedsSession(method)
	var key string
	var paramErr error
	if known {
		key, paramErr = s.rules.CheckParams(method, business)
	}
	s.mu.Lock()
	s.counts.call(method, key)
	s.mu.Unlock()

	if !s.wait(r, rl.delay) {
		return
	}
	if rl.hang > 0 {
		s.fault("hang")
		if s.wait(r, rl.hang) {
			http.Error(w, "gateway timeout (simulated hang)", http.StatusGatewayTimeout)
		}
		return
	}
	if rl.http503 {
		s.fault("http_503")
		http.Error(w, "service unavailable (simulated)", http.StatusServiceUnavailable)
		return
	}
	if e := s.checkSystem(p); e != nil {
		s.answerError(w, rl, e)
		return
	}
	if !known {
		s.answerError(w, rl, errf(22, "Invalid method", "", "method %s is not served here", method))
		return
	}
	if e := s.checkBan(rl, method); e != nil {
		s.fault("ban")
		s.answerError(w, rl, e)
		return
	}
	if needs {
		switch sess := p["session"]; {
		case isBlank(sess):
			s.answerError(w, rl, errf(26, "Missing session", "", "method %s needs a session", method))
			return
		case len(s.sessions) > 0 && !s.sessions[sess]:
			s.answerError(w, rl, errf(27, "Invalid session", "", "session is unknown or expired"))
			return
		}
	}
	if paramErr != nil {
		s.answerError(w, rl, argumentsError(paramErr))
		return
	}
	if rl.isp {
		s.fault("isp")
		s.answerError(w, rl, errf(15, "Remote service error", "isp.top-remote-connection-timeout",
			"remote service timed out (simulated)"))
		return
	}
	inner := success(method, key, business)
	inner["request_id"] = rl.requestID
	s.mu.Lock()
	s.counts.success(method, key)
	s.mu.Unlock()
	s.answer(w, rl, map[string]any{strings.ReplaceAll(method, ".", "_") + "_response": inner})
}

// answer writes a processed call's answer, or, when the call drew a drop,
// resets the connection instead.
func (s *Sim) answer(w http.ResponseWriter, rl roll, v any) {
	if !rl.drop {
		writeJSON(w, http.StatusOK, v)
		return
	}
	s.fault("drop")
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 (or a ResponseWriter that cannot be hijacked): abort the
		// response; the server resets the stream without logging a panic.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST, as a gateway whose process died would
	}
	_ = conn.Close()
}

// systemParams are the names that are not business parameters.
var systemParams = map[string]bool{
	"method": true, "app_key": true, "timestamp": true, "v": true, "format": true,
	"sign_method": true, "sign": true, "session": true, "partner_id": true,
	"target_app_key": true, "simplify": true,
}

// businessParams are the non-blank parameters that are not system ones.
func businessParams(p map[string]string) map[string]string {
	b := make(map[string]string, len(p))
	for k, v := range p {
		if !systemParams[k] && !isBlank(v) {
			b[k] = v
		}
	}
	return b
}

var versionRe = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

var gmt8 = time.FixedZone("GMT+8", 8*3600)

const skew = 10 * time.Minute

// checkSystem checks the system parameters and the signature, in the order
// the gateway reports them.
func (s *Sim) checkSystem(p map[string]string) *apiError {
	switch {
	case isBlank(p["method"]):
		return errf(21, "Missing method", "", "method is required")
	case isBlank(p["app_key"]):
		return errf(28, "Missing app key", "", "app_key is required")
	case p["app_key"] != s.appKey:
		return errf(29, "Invalid app Key", "", "app_key %s is unknown", p["app_key"])
	case isBlank(p["timestamp"]):
		return errf(30, "Missing timestamp", "", "timestamp is required")
	}
	now := s.now()
	ts, ok := parseTimestamp(p["timestamp"])
	if !ok {
		return errf(31, "Invalid timestamp", "", "timestamp %q is not yyyy-MM-dd HH:mm:ss (GMT+8)", p["timestamp"])
	}
	if d := now.Sub(ts); d > skew || d < -skew {
		return errf(31, "Invalid timestamp", "",
			"timestamp %s is more than 10 minutes from the gateway's %s (GMT+8)",
			p["timestamp"], now.In(gmt8).Format(time.DateTime))
	}
	switch v := p["v"]; {
	case isBlank(v):
		return errf(32, "Missing version", "", "v is required")
	case !versionRe.MatchString(v):
		return errf(33, "Invalid version", "", "v %q is not a version", v)
	case v != "2.0" && v != "2":
		return errf(34, "Unsupported version", "", "v %s is not supported; use 2.0", v)
	}
	if f := p["format"]; f != "json" {
		return errf(23, "Invalid format", "", "this simulator answers json only; send format=json, not %q", f)
	}
	signMethod := p["sign_method"]
	if signMethod == "" {
		signMethod = topapi.SignMD5
	}
	if isBlank(p["sign"]) {
		return errf(24, "Missing signature", "", "sign is required")
	}
	want, err := topapi.Sign(p, s.secret, signMethod)
	if err != nil {
		return errf(25, "Invalid signature", "", "sign_method %q is not md5, hmac or hmac-sha256", signMethod)
	}
	if !strings.EqualFold(p["sign"], want) {
		return errf(25, "Invalid signature", "", "the signature does not match (sign_method %s)", signMethod)
	}
	return nil
}

// parseTimestamp reads "2006-01-02 15:04:05" in GMT+8, or epoch
// milliseconds as the Python SDK sends.
func parseTimestamp(v string) (time.Time, bool) {
	if t, err := time.ParseInLocation(time.DateTime, v, gmt8); err == nil {
		return t, true
	}
	if len(v) == 13 {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.UnixMilli(ms), true
		}
	}
	return time.Time{}, false
}

// checkBan answers code 7 while the app key or method is banned, and starts
// a ban when this request drew one and none holds it yet.
func (s *Sim) checkBan(rl roll, method string) *apiError {
	now := s.now()
	s.mu.Lock()
	held := func() ban {
		if now.Before(s.appBan.until) {
			return s.appBan
		}
		return s.apiBans[method]
	}
	if rl.ban && !now.Before(held().until) {
		b := ban{until: now.Add(time.Duration(rl.banFor) * time.Second), subCode: rl.banSub}
		if perAPI(b.subCode) {
			s.apiBans[method] = b
		} else {
			s.appBan = b
		}
	}
	b := held()
	s.mu.Unlock()
	left := b.until.Sub(now)
	if left <= 0 {
		return nil
	}
	return errf(7, "App Call Limited", b.subCode,
		"This ban will last for %d more seconds", int64(math.Ceil(left.Seconds())))
}

// argumentsError is the code-41 answer for a failed business check.
func argumentsError(err error) *apiError {
	var fe fieldError
	if errors.As(err, &fe) {
		kind := "isv.invalid-parameter:"
		if fe.Missing() {
			kind = "isv.missing-parameter:"
		}
		return errf(41, "Invalid arguments", kind+fe.FieldPath(), "%s", err.Error())
	}
	return errf(41, "Invalid arguments", "isv.invalid-parameter", "%s", err.Error())
}

func (s *Sim) answerError(w http.ResponseWriter, rl roll, e *apiError) {
	s.mu.Lock()
	s.counts.errors[e.Code]++
	s.mu.Unlock()
	s.answer(w, rl, map[string]any{"error_response": struct {
		*apiError
		RequestID string `json:"request_id"`
	}{e, rl.requestID}})
}

func (s *Sim) fault(kind string) {
	s.mu.Lock()
	s.counts.faults[kind]++
	s.mu.Unlock()
}

// wait pauses a request for d, ending early (false) when the client goes
// away; Close ends it early too (true).
func (s *Sim) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return true
	case <-r.Context().Done():
		return false
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// isBlank mirrors the client: empty or only whitespace.
func isBlank(v string) bool { return strings.TrimSpace(v) == "" }
