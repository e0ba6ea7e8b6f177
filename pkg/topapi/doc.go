// Package topapi calls the Alibaba open platform (TOP) gateway.
//
// A [Client] signs each request exactly as the official SDKs do (md5, hmac or
// hmac-sha256 over the sorted, non-empty parameters), posts it as a form to
// the gateway, and returns the inner object of the method's
// "<method>_response" envelope. Every platform or transport failure comes back
// as a [*Error] that says whether it is worth retrying ([Error.Retryable]) and
// how long the platform asked to wait ([Error.RetryAfter]).
//
// The client honours the platform's flow control: a rate limit per app key and
// method, and a ban shared by every caller of an app key once the gateway says
// "This ban will last for N more seconds". Bans longer than
// [Config.MaxBanWait] are not waited out; they are returned as an error that
// matches [ErrLongBan], so the caller can park the work instead.
//
// Channels with a gateway of their own use [Client.WithGateway], which shares
// the rate limiters and bans of the client it comes from.
//
// The app secret and session keys never appear in errors, logs or String
// output.
//
// The gateway simulator used by tests, benchmarks and "worker dev" lives in
// the sub-package topsim.
package topapi
