package topsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Defaults applied to zero-valued [Faults] fields.
const (
	DefaultBanSeconds = 2
	DefaultBanSubCode = SubCodeAppLimit
	DefaultHang       = 30 * time.Second
	maxHang           = 10 * time.Minute
)

// The sub_codes of code-7 bans the real platform answers: an app-wide limit
// (every call of the app key), and the per-API limits (the calls of one
// method: across all apps, or of this app).
const (
	SubCodeAppLimit    = "accesscontrol.limited-by-app-access-count"
	SubCodeAPILimit    = "accesscontrol.limited-by-api-access-count"
	SubCodeAppAPILimit = "accesscontrol.limited-by-app-api-access-count"
)

// Faults are the failures the simulator injects. Each rate is a probability
// in [0, 1], drawn independently per request from the seeded random source
// in this order: hang, HTTP 503, ban, isp error, drop (a rate of 0 draws
// nothing). The zero value injects nothing. In JSON (PUT /faults) durations
// are Go duration strings:
//
//	{"latency":"5ms","jitter":"2ms","error_rate":0.01,"isp_rate":0.01,
//	 "ban_rate":0.001,"ban_seconds":2,"ban_sub_code":"accesscontrol.limited-by-app-access-count",
//	 "hang_rate":0.001,"hang":"30s","drop_rate":0.001}
type Faults struct {
	// Latency delays every answer; Jitter adds a uniform random delay in
	// [0, Jitter).
	Latency time.Duration
	Jitter  time.Duration
	// ErrorRate is the share of requests answered with HTTP 503 and a
	// non-JSON body, as a failing proxy would.
	ErrorRate float64
	// ISPRate is the share of otherwise valid calls answered with code 15,
	// sub_code isp.top-remote-connection-timeout.
	ISPRate float64
	// BanRate is the share of signed calls that start a ban for BanSeconds
	// (default 2): code 7 with sub_code BanSubCode, sub_msg "This ban will
	// last for N more seconds". With an app-wide BanSubCode (default
	// SubCodeAppLimit) the ban holds every call of the app key; with a
	// per-API one (SubCodeAPILimit, SubCodeAppAPILimit: it names "-api-")
	// only the calls of the drawing call's method. While a ban lasts, the
	// calls it holds get code 7. [Sim.Ban] starts one at will.
	BanRate    float64
	BanSeconds int
	BanSubCode string
	// HangRate is the share of requests that get no answer for Hang
	// (default 30s, at most 10m) or until the client gives up; a hang that
	// runs its course ends with HTTP 504. A hung call is never processed.
	HangRate float64
	Hang     time.Duration
	// DropRate is the share of calls that are processed in full — counted
	// in Stats, a success as a success, the idempotent result recorded as
	// the platform would — and then get no answer: the simulator hijacks
	// the HTTP/1.1 connection and resets it (TCP RST) before writing a
	// byte, so the client sees a connection reset after its request was
	// executed. Counted as fault "drop". Over HTTP/2, where connections
	// cannot be hijacked, the stream is aborted instead.
	DropRate float64
}

func (f Faults) withDefaults() Faults {
	if f.BanSeconds == 0 {
		f.BanSeconds = DefaultBanSeconds
	}
	if f.BanSubCode == "" {
		f.BanSubCode = DefaultBanSubCode
	}
	if f.Hang == 0 {
		f.Hang = DefaultHang
	}
	return f
}

// Validate reports the first invalid field.
func (f Faults) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{{"error_rate", f.ErrorRate}, {"isp_rate", f.ISPRate}, {"ban_rate", f.BanRate}, {"hang_rate", f.HangRate}, {"drop_rate", f.DropRate}} {
		if !(r.v >= 0 && r.v <= 1) {
			return fmt.Errorf("%s: %g is not in [0, 1]", r.name, r.v)
		}
	}
	switch {
	case f.Latency < 0:
		return fmt.Errorf("latency: %s is negative", f.Latency)
	case f.Jitter < 0:
		return fmt.Errorf("jitter: %s is negative", f.Jitter)
	case f.BanSeconds < 0:
		return fmt.Errorf("ban_seconds: %d is negative", f.BanSeconds)
	case f.Hang < 0 || f.Hang > maxHang:
		return fmt.Errorf("hang: %s is not in [0, %s]", f.Hang, maxHang)
	}
	if f.BanSubCode != "" {
		if err := checkBanSubCode(f.BanSubCode); err != nil {
			return fmt.Errorf("ban_sub_code: %w", err)
		}
	}
	return nil
}

// checkBanSubCode accepts the accesscontrol.* sub_codes of code-7 answers.
func checkBanSubCode(s string) error {
	if !strings.HasPrefix(s, "accesscontrol.") || len(s) == len("accesscontrol.") {
		return fmt.Errorf("%q is not an accesscontrol.* sub_code (e.g. %s)", s, SubCodeAppLimit)
	}
	return nil
}

// perAPI reports whether a ban with sub_code s holds one API method rather
// than the whole app key.
func perAPI(subCode string) bool { return strings.Contains(subCode, "-api-") }

type faultsJSON struct {
	Latency    string  `json:"latency"`
	Jitter     string  `json:"jitter"`
	ErrorRate  float64 `json:"error_rate"`
	ISPRate    float64 `json:"isp_rate"`
	BanRate    float64 `json:"ban_rate"`
	BanSeconds int     `json:"ban_seconds"`
	BanSubCode string  `json:"ban_sub_code"`
	HangRate   float64 `json:"hang_rate"`
	Hang       string  `json:"hang"`
	DropRate   float64 `json:"drop_rate"`
}

// MarshalJSON writes f with durations as Go duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		Latency: f.Latency.String(), Jitter: f.Jitter.String(),
		ErrorRate: f.ErrorRate, ISPRate: f.ISPRate,
		BanRate: f.BanRate, BanSeconds: f.BanSeconds, BanSubCode: f.BanSubCode,
		HangRate: f.HangRate, Hang: f.Hang.String(),
		DropRate: f.DropRate,
	})
}

// UnmarshalJSON reads f; absent fields are zero, unknown fields are errors.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	var out Faults
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"latency", j.Latency, &out.Latency}, {"jitter", j.Jitter, &out.Jitter}, {"hang", j.Hang, &out.Hang}} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		*d.out = v
	}
	out.ErrorRate, out.ISPRate, out.BanRate, out.BanSeconds, out.BanSubCode, out.HangRate, out.DropRate =
		j.ErrorRate, j.ISPRate, j.BanRate, j.BanSeconds, j.BanSubCode, j.HangRate, j.DropRate
	*f = out
	return nil
}
