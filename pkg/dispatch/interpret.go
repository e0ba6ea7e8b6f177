package dispatch

import (
	"bytes"
	"encoding/json"
)

// Responses are read leniently (unknown fields ignored, codes as strings or
// numbers, flags as booleans or "true"/"false"): the platform is the
// authority on its own answers. Requests, in contrast, are checked strictly.

// flag is a business success flag.
type flag struct {
	set, val bool
}

func (f *flag) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true", `"true"`:
		*f = flag{set: true, val: true}
	case "false", `"false"`:
		*f = flag{set: true, val: false}
	default:
		*f = flag{} // null or anything else: no usable flag
	}
	return nil
}

// text is an error code or message: a JSON string, or the literal of a number.
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = text(s)
		return nil
	}
	if string(b) == "null" {
		*t = ""
		return nil
	}
	*t = text(b)
	return nil
}

// interpretFlag decodes body into v (a struct with the flag) and reports the
// outcome read by get.
func interpretFlag[T any](body json.RawMessage, get func(*T) (ok flag, code, msg text), name string) (string, *ErrorInfo) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil || !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		return StatusFailed, &ErrorInfo{Kind: KindPlatform, Msg: "response is not a JSON object"}
	}
	ok, code, msg := get(&v)
	switch {
	case !ok.set:
		return StatusFailed, &ErrorInfo{Kind: KindBusiness, Msg: "response has no " + name + " flag"}
	case ok.val:
		return StatusSucceeded, nil
	default:
		return StatusFailed, &ErrorInfo{Kind: KindBusiness, Code: string(code), Msg: string(msg)}
	}
}

// interpretNoFlag is for APIs without a business flag: the platform accepted
// the call, which is success.
func interpretNoFlag(json.RawMessage) (string, *ErrorInfo) {
	return StatusSucceeded, nil
}
