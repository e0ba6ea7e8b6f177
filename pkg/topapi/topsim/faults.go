package topsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Defaults applied to zero-valued [Faults] fields.
const (
	DefaultBanSeconds = 2
	DefaultHang       = 30 * time.Second
	maxHang           = 10 * time.Minute
)

// Faults are the failures the simulator injects. Each rate is a probability
// in [0, 1], drawn independently per request from the seeded random source
// in this order: hang, HTTP 503, ban, isp error. The zero value injects
// nothing. In JSON (PUT /faults) durations are Go duration strings:
//
//	{"latency":"5ms","jitter":"2ms","error_rate":0.01,"isp_rate":0.01,
//	 "ban_rate":0.001,"ban_seconds":2,"hang_rate":0.001,"hang":"30s"}
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
	// BanRate is the share of signed calls that start a ban of the app key
	// for BanSeconds (default 2): code 7, sub_code
	// accesscontrol.limited-by-app-access-count, sub_msg "This ban will last
	// for N more seconds". While a ban lasts, every call gets code 7.
	BanRate    float64
	BanSeconds int
	// HangRate is the share of requests that get no answer for Hang
	// (default 30s, at most 10m) or until the client gives up; a hang that
	// runs its course ends with HTTP 504. A hung call is never processed.
	HangRate float64
	Hang     time.Duration
}

func (f Faults) withDefaults() Faults {
	if f.BanSeconds == 0 {
		f.BanSeconds = DefaultBanSeconds
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
	}{{"error_rate", f.ErrorRate}, {"isp_rate", f.ISPRate}, {"ban_rate", f.BanRate}, {"hang_rate", f.HangRate}} {
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
	return nil
}

type faultsJSON struct {
	Latency    string  `json:"latency"`
	Jitter     string  `json:"jitter"`
	ErrorRate  float64 `json:"error_rate"`
	ISPRate    float64 `json:"isp_rate"`
	BanRate    float64 `json:"ban_rate"`
	BanSeconds int     `json:"ban_seconds"`
	HangRate   float64 `json:"hang_rate"`
	Hang       string  `json:"hang"`
}

// MarshalJSON writes f with durations as Go duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		Latency: f.Latency.String(), Jitter: f.Jitter.String(),
		ErrorRate: f.ErrorRate, ISPRate: f.ISPRate,
		BanRate: f.BanRate, BanSeconds: f.BanSeconds,
		HangRate: f.HangRate, Hang: f.Hang.String(),
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
	out.ErrorRate, out.ISPRate, out.BanRate, out.BanSeconds, out.HangRate =
		j.ErrorRate, j.ISPRate, j.BanRate, j.BanSeconds, j.HangRate
	*f = out
	return nil
}
