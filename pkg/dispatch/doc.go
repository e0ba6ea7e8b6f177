// Package dispatch knows the five sales channels: it decodes and checks each
// input event against its API page, turns it into a TOP gateway call, and
// turns the platform's answer into one outcome.
//
// # Events
//
// [DecodeEnvelope] checks a message value's hard limits before parsing it
// (size, UTF-8, nesting depth) and returns its [Envelope]. [Registry.ByTopic]
// finds the [Channel] of the message's topic, and [Channel.Prepare] decodes
// the envelope's request strictly against the channel's wire structs: unknown
// fields, wrong JSON types, non-integers and numbers beyond int64 are
// rejected, and so is every breach of the page's rules (必须 required fields,
// 最大列表长度 list limits, enumerations, date formats, non-negative amounts,
// documented relations between fields). A problem is a *[FieldError] naming
// its JSON path, e.g. "request.goods_details[3].price: required"; the first
// problem is reported.
//
// The result, a [Prepared], holds the idempotency key (the envelope's
// idempotency_key, else the channel's default, e.g. omni-saas request_no), the request
// [Fingerprint], and the topapi.Request to send: one form parameter per
// top-level business parameter, objects and lists as compact JSON, absent
// optional fields omitted.
//
// # Answers
//
// [Channel.Interpret] reads the API's business flag from a successful call's
// inner response object; [ErrorFromTOP] describes a failed call. [Outcome] is
// the result event; its JSON form is the documented outcome schema
// (api/schemas/outcome.json).
//
// # Gateway simulator
//
// *[Registry] also implements the topsim.Rules interface: it checks form
// parameters as they arrive at the gateway with the same rules, and says
// which key the platform would de-duplicate on.
//
// Everything in this package is safe for concurrent use.
package dispatch
