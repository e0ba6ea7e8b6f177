package topapi

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrLongBan matches (with errors.Is) an [*Error] returned without calling the
// gateway because the app key is banned for longer than [Config.MaxBanWait].
// Its RetryAfter says how long the ban still lasts.
var ErrLongBan = errors.New("topapi: app key banned")

// Error kinds, as reported by [Error.Kind].
const (
	KindPlatform = "platform" // any platform or transport failure but authorization
	KindAuth     = "auth"     // missing or invalid session, forbidden request
)

// Error is a failed gateway call: an error_response from the platform, an HTTP
// error status, a transport failure or timeout (Code 0, Err set), or a
// request or answer the client refused (Code 0). [Client.Call] returns no
// other error type. Its text never holds the app secret or session key.
type Error struct {
	Code       int    // platform error code; 0 for transport and HTTP failures
	Msg        string // platform message, or a description of the transport failure
	SubCode    string // e.g. "isv.invalid-parameter", "isp.top-remote-connection-timeout"
	SubMsg     string
	RequestID  string // request id the platform gave, if any
	HTTPStatus int    // HTTP status of the answer; 0 when none arrived
	Err        error  // transport cause, if any

	retryable  bool
	retryAfter time.Duration
	longBan    bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("top: ")
	switch {
	case e.Code != 0:
		fmt.Fprintf(&b, "code %d %s", e.Code, e.Msg)
		if e.SubCode != "" {
			fmt.Fprintf(&b, " (%s", e.SubCode)
			if e.SubMsg != "" {
				fmt.Fprintf(&b, ": %s", e.SubMsg)
			}
			b.WriteString(")")
		}
	case e.Err != nil:
		b.WriteString(e.Msg)
		if e.Msg != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	default:
		if e.HTTPStatus != 0 {
			fmt.Fprintf(&b, "HTTP %d ", e.HTTPStatus)
		}
		b.WriteString(e.Msg)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request_id %s]", e.RequestID)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is [ErrLongBan] and e is such a ban.
func (e *Error) Is(target error) bool { return target == ErrLongBan && e.longBan }

// Retryable reports whether the same request may succeed if sent again
// later: transport failures and timeouts, HTTP 5xx (and 408, 429), codes
// 4-8 and 10 (call limits, service unavailable), any isp.* or
// accesscontrol.* sub-code, and the isv.* sub-codes of
// [Config.RetryableSubCodes]. Everything else is permanent: other isv.*
// sub-codes, invalid parameters, signature, app key, session or timestamp,
// other HTTP 4xx, and answers the client cannot use (too long, not JSON,
// without the method's envelope).
func (e *Error) Retryable() bool { return e.retryable }

// RetryAfter is how long the platform asked callers to wait (code 7 "This ban
// will last for N more seconds"), or 0 when it said nothing.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// Kind is [KindAuth] for session and permission failures (codes 26, 27, 42,
// 44) and [KindPlatform] otherwise.
func (e *Error) Kind() string {
	switch e.Code {
	case 26, 27, 42, 44:
		return KindAuth
	}
	return KindPlatform
}

var banRe = regexp.MustCompile(`ban will last for (\d+) more seconds`)

// classify sets e's retryability and RetryAfter from its code, sub-code and
// HTTP status. retryISV lists isv.* sub-codes that really mean "try later".
// Errors the client raises itself (invalid request, oversized or malformed
// answer) are not classified: they keep retryable false.
func (e *Error) classify(retryISV map[string]bool) {
	e.retryable = isTransient(e, retryISV)
	if m := banRe.FindStringSubmatch(e.SubMsg); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			e.retryAfter = time.Duration(n) * time.Second
		}
	}
}

func isTransient(e *Error, retryISV map[string]bool) bool {
	switch {
	case e.HTTPStatus >= 500, e.HTTPStatus == 408, e.HTTPStatus == 429:
		// A server-side failure, or a proxy asking to come back later,
		// whatever the body says.
		return true
	case e.Code == 0:
		// Transport failure or timeout (no status), or an HTTP error status
		// without a platform answer: a client-side status is not worth
		// repeating.
		return e.Err != nil || e.HTTPStatus == 0
	}
	switch e.Code {
	case 4, 5, 6, 7, 8, 10:
		return true
	}
	switch {
	case strings.HasPrefix(e.SubCode, "isp."):
		return true
	case strings.HasPrefix(e.SubCode, "accesscontrol.limited-by-"):
		return true
	case retryISV[e.SubCode]:
		return true
	}
	return false
}
