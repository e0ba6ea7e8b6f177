package dispatch

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/ordersync/ordersync/pkg/topapi"
)

// HeaderChannel is set on every outcome record: the channel id.
const HeaderChannel = "ordersync-channel"

// Schema is the value of Outcome.Schema.
const Schema = "ordersync.outcome.v1"

// Outcome statuses.
const (
	// StatusSucceeded: the platform accepted the call and the API's business
	// flag, where it has one, is true.
	StatusSucceeded = "succeeded"
	// StatusFailed: a permanent platform error, a business failure,
	// retries exhausted, a seller session refused (auth), or an outcome
	// that cannot be known (ambiguous).
	StatusFailed = "failed"
	// StatusRejected: never sent (undecodable, invalid, unknown channel,
	// missing session, or a conflicting re-use of an idempotency key).
	StatusRejected = "rejected"
	// StatusDuplicate: the idempotency key was already completed; response
	// and error replay the original outcome.
	StatusDuplicate = "duplicate"
)

// Error kinds (ErrorInfo.Kind).
const (
	KindValidation = "validation" // the event breaks the envelope or the API page
	KindConflict   = "conflict"   // idempotency key re-used with a different request
	KindPlatform   = "platform"   // TOP error or transport failure
	KindBusiness   = "business"   // the API's business flag is false
	KindExhausted  = "exhausted"  // transient failures until the retry budget ran out
	KindAuth       = "auth"       // missing or invalid session, forbidden
	KindAmbiguous  = "ambiguous"  // the call may have been executed; the platform does not deduplicate it, so it is not repeated
)

// Error codes the worker sets itself (ErrorInfo.Code), besides the platform's.
const (
	CodeDedupeCorrupt = "dedupe-corrupt" // the record under the key in Redis is not the worker's
	CodeInternal      = "internal"       // a panic while processing
)

// ErrorInfo says why an event failed or was rejected. Its JSON form always
// has every field, in this order.
type ErrorInfo struct {
	Kind      string `json:"kind"`
	Code      string `json:"code"`
	Msg       string `json:"msg"`
	SubCode   string `json:"sub_code"`
	SubMsg    string `json:"sub_msg"`
	Retryable bool   `json:"retryable"`
}

// Source locates the consumed message.
type Source struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Outcome is what happened to one consumed event, published to the results
// topic. Its JSON form is api/schemas/outcome.json, fields in that order;
// response, error, request_id and trace_id are omitted when empty. Schema
// is written as [Schema] when left empty.
type Outcome struct {
	Schema         string `json:"schema"`
	EventID        string `json:"event_id"`
	Channel        string `json:"channel"`
	Method         string `json:"method"`
	IdempotencyKey string `json:"idempotency_key"`
	Status         string `json:"status"`
	Attempts       int    `json:"attempts"`
	// Response is the API's inner response object, byte for byte (large ids
	// keep every digit). If it is not valid JSON it is written as a JSON
	// string instead, so an outcome can always be encoded.
	Response json.RawMessage `json:"response,omitempty"`
	// ResponseTruncated says Response was too large for the results topic: it holds the start of
	// the answer as a JSON string, or nothing.
	ResponseTruncated bool       `json:"response_truncated,omitempty"`
	Error             *ErrorInfo `json:"error,omitempty"`
	RequestID         string     `json:"request_id,omitempty"`
	Source            Source     `json:"source"`
	ReceivedAt        time.Time  `json:"received_at"`
	CompletedAt       time.Time  `json:"completed_at"`
	TraceID           string     `json:"trace_id,omitempty"`
}

// MarshalJSON encodes o as described on [Outcome].
func (o Outcome) MarshalJSON() ([]byte, error) {
	type plain Outcome // no methods: no recursion
	p := plain(o)
	if p.Schema == "" {
		p.Schema = Schema
	}
	if len(p.Response) > 0 && !json.Valid(p.Response) {
		s, err := json.Marshal(string(p.Response))
		if err != nil {
			return nil, err
		}
		p.Response = s
	}
	return json.Marshal(p)
}

// ErrorFromTOP describes a failed gateway call. A *topapi.Error (found with
// errors.As) gives kind platform or auth (its Kind), its code as a decimal
// string ("" for transport and HTTP failures, whose msg then carries the
// cause or "HTTP <status>"), msg, sub_code, sub_msg and retryability. Any other error is kind platform, not retryable, with its
// text as msg. nil gives nil.
func ErrorFromTOP(err error) *ErrorInfo {
	if err == nil {
		return nil
	}
	var te *topapi.Error
	if !errors.As(err, &te) {
		return &ErrorInfo{Kind: KindPlatform, Msg: err.Error()}
	}
	info := &ErrorInfo{
		Kind:      te.Kind(),
		Msg:       te.Msg,
		SubCode:   te.SubCode,
		SubMsg:    te.SubMsg,
		Retryable: te.Retryable(),
	}
	if te.Code != 0 {
		info.Code = strconv.Itoa(te.Code)
	}
	if te.Code == 0 && te.Err == nil && te.HTTPStatus != 0 {
		info.Msg = "HTTP " + strconv.Itoa(te.HTTPStatus) + " " + info.Msg
	}
	if te.Err != nil {
		if info.Msg != "" {
			info.Msg += ": "
		}
		info.Msg += te.Err.Error()
	}
	return info
}

// ErrorFromValidation describes an event that Prepare or DecodeEnvelope
// rejected: kind validation, code "missing" for a required field that was not
// given, "invalid" otherwise, and the error text ("request.store_id:
// required") as msg. nil gives nil.
func ErrorFromValidation(err error) *ErrorInfo {
	if err == nil {
		return nil
	}
	info := &ErrorInfo{Kind: KindValidation, Code: "invalid", Msg: err.Error()}
	var fe interface{ Missing() bool }
	if errors.As(err, &fe) && fe.Missing() {
		info.Code = "missing"
	}
	return info
}
