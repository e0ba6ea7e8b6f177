package topapi

import "encoding/json"

// Request is one call of a TOP API method.
type Request struct {
	// Method is the API name, e.g. "alibaba.omni.saas.order.create".
	Method string
	// Params are the business parameters as sent on the wire: scalars as
	// strings, objects and lists as compact JSON. Empty values are neither
	// signed nor sent.
	Params map[string]string
	// Session is the seller's session key for APIs that need one; empty
	// otherwise. It is a secret.
	Session string
}

// Response is the answer to a successful call.
type Response struct {
	// Body is the inner object of the "<method>_response" envelope, intact,
	// including any business failure flag the API carries.
	Body json.RawMessage
	// RequestID is the platform's request id, if it gave one.
	RequestID string
}
