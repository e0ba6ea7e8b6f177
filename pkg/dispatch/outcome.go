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

// MarshalJSON encodes o as described on [Outcome]. The bytes are exactly what encoding/json
// writes for these fields (HTML-safe escapes, a compacted response, RFC 3339 times with
// nanoseconds), without its reflection: FuzzOutcomeJSON holds the two equal.
func (o Outcome) MarshalJSON() ([]byte, error) {
	return o.AppendJSON(make([]byte, 0, 512+len(o.Response)))
}

// AppendJSON appends o's JSON form (as MarshalJSON) to b.
func (o Outcome) AppendJSON(b []byte) ([]byte, error) {
	schema := o.Schema
	if schema == "" {
		schema = Schema
	}
	b = append(b, `{"schema":`...)
	b = appendJSONString(b, schema)
	b = append(b, `,"event_id":`...)
	b = appendJSONString(b, o.EventID)
	b = append(b, `,"channel":`...)
	b = appendJSONString(b, o.Channel)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, o.Method)
	b = append(b, `,"idempotency_key":`...)
	b = appendJSONString(b, o.IdempotencyKey)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, o.Status)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(o.Attempts), 10)
	if len(o.Response) > 0 {
		b = append(b, `,"response":`...)
		if json.Valid(o.Response) {
			b = appendCompactJSON(b, o.Response)
		} else {
			b = appendJSONString(b, string(o.Response))
		}
	}
	if o.ResponseTruncated {
		b = append(b, `,"response_truncated":true`...)
	}
	if e := o.Error; e != nil {
		b = append(b, `,"error":{"kind":`...)
		b = appendJSONString(b, e.Kind)
		b = append(b, `,"code":`...)
		b = appendJSONString(b, e.Code)
		b = append(b, `,"msg":`...)
		b = appendJSONString(b, e.Msg)
		b = append(b, `,"sub_code":`...)
		b = appendJSONString(b, e.SubCode)
		b = append(b, `,"sub_msg":`...)
		b = appendJSONString(b, e.SubMsg)
		b = append(b, `,"retryable":`...)
		b = strconv.AppendBool(b, e.Retryable)
		b = append(b, '}')
	}
	if o.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = appendJSONString(b, o.RequestID)
	}
	b = append(b, `,"source":{"topic":`...)
	b = appendJSONString(b, o.Source.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(o.Source.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, o.Source.Offset, 10)
	b = append(b, `},"received_at":`...)
	var err error
	if b, err = appendJSONTime(b, o.ReceivedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"completed_at":`...)
	if b, err = appendJSONTime(b, o.CompletedAt); err != nil {
		return nil, err
	}
	if o.TraceID != "" {
		b = append(b, `,"trace_id":`...)
		b = appendJSONString(b, o.TraceID)
	}
	return append(b, '}'), nil
}

// appendJSONTime appends t as encoding/json does: RFC 3339 with nanoseconds, in quotes.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		return nil, errors.New("Time.MarshalJSON: year outside of range [0,9999]")
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendCompactJSON appends the valid JSON text v compacted and HTML-escaped, as encoding/json
// writes a json.RawMessage.
func appendCompactJSON(b []byte, v []byte) []byte {
	inString, escaped := false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			case c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xf])
				continue
			case c == 0xe2 && i+2 < len(v) && v[i+1] == 0x80 && v[i+2]&^1 == 0xa8: // U+2028, U+2029
				b = append(b, '\\', 'u', '2', '0', '2', hexDigit[v[i+2]&0xf])
				i += 2
				continue
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '"':
			inString = true
		}
		b = append(b, c)
	}
	return b
}

const hexDigit = "0123456789abcdef"

// appendJSONString appends s as a JSON string escaped as encoding/json does by default (see
// appendQuoted).
func appendJSONString(b []byte, s string) []byte { return appendQuoted(b, s, true) }

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
