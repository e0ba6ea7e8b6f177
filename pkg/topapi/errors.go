package topapi

import (
	"errors"
	"fmt"
	"net/http"
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

	retryable   bool
	retryAfter  time.Duration
	longBan     bool
	credentials bool // the app's configuration was refused (see Credentials)
	sent        bool // the whole request was written to the gateway
	answered    bool // the gateway answered 2xx with something the client could not use
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

// Kind is [KindAuth] for failures of the seller's session (see
// [Error.Session]) and [KindPlatform] otherwise.
func (e *Error) Kind() string {
	if e.Session() {
		return KindAuth
	}
	return KindPlatform
}

// Session reports whether the platform refused the seller's session rather
// than the app or the request: codes 12 (insufficient user permissions), 26
// and 27 (missing or invalid session), 42 (insufficient session permissions)
// and 44 (invalid access token). Refreshing the seller's session fixes it.
func (e *Error) Session() bool {
	switch e.Code {
	case 12, 26, 27, 42, 44:
		return true
	}
	return false
}

// Credentials reports whether the failure is the app's configuration rather
// than the request: the platform refused the signature (24, 25), the app key
// (28, 29), the app's permissions (11, 13) or the timestamp (30, 31: the
// host's clock), or the gateway URL answered HTTP 401, 403, 404 or a
// redirect, or a 2xx
// that is not a TOP answer (not JSON, without the method's envelope). Every
// call fails the same way until the configuration is fixed; none of them was
// executed.
func (e *Error) Credentials() bool {
	if e.credentials {
		return true
	}
	switch e.Code {
	case 11, 13, 24, 25, 28, 29, 30, 31:
		return true
	}
	return false
}

// MayHaveExecuted reports whether the platform may have executed the call
// although it failed: the request was written and no answer proves it was not
// carried out — a timeout or a broken connection after the request left, an
// HTTP 5xx (a proxy may have forwarded it), a platform failure (isp.*, code
// 10), or a 2xx answer the client could not use. Flow control, failed checks
// (signature, parameters, session) and failures before the request was
// written report false: the call was certainly not executed.
func (e *Error) MayHaveExecuted() bool {
	switch {
	case !e.sent:
		return false
	case e.answered:
		return true
	case e.Code != 0:
		return e.Code == 10 || strings.HasPrefix(e.SubCode, "isp.")
	case e.HTTPStatus >= 500:
		return true
	case e.HTTPStatus != 0:
		return false // 4xx, or a 2xx that is not a TOP answer: refused before execution
	default:
		return e.Err != nil // written, then no answer
	}
}

// Ban scopes, as reported by [Error.BanScope].
const (
	BanApp = "app" // every method of the app key
	BanAPI = "api" // one method (per-API limits)
)

// BanScope says what a flow-control error limits: [BanAPI] for the per-API
// sub-codes (accesscontrol.limited-by-api-access-count,
// accesscontrol.limited-by-app-api-access-count), [BanApp] otherwise.
func (e *Error) BanScope() string {
	switch e.SubCode {
	case "accesscontrol.limited-by-api-access-count", "accesscontrol.limited-by-app-api-access-count":
		return BanAPI
	}
	return BanApp
}

// isFlowControl reports whether e is the platform's flow control (codes 4-8,
// accesscontrol.* sub-codes).
func (e *Error) isFlowControl() bool {
	return e.Code >= 4 && e.Code <= 8 || strings.HasPrefix(e.SubCode, "accesscontrol.")
}

// IsFlowControl reports whether err is a flow-control refusal of the
// platform (a call limit or a ban; codes 4-8, accesscontrol.* sub-codes),
// answered by the gateway or recorded by the client. Such a call was not
// executed.
func IsFlowControl(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.isFlowControl()
}

var banRe = regexp.MustCompile(`ban will last for (\d+) more seconds`)

// classify sets e's retryability and RetryAfter from its code, sub-code and
// HTTP status. retryISV lists isv.* sub-codes that really mean "try later".
// Errors the client raises itself (invalid request, oversized or malformed
// answer) are not classified: they keep retryable false.
func (e *Error) classify(retryISV map[string]bool) {
	e.retryable = isTransient(e, retryISV)
	switch e.HTTPStatus {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		// Not a TOP answer: the gateway URL or a proxy in front of it refused us.
		e.credentials = e.Code == 0
	}
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
