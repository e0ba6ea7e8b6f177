package dedupe

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// encodeRecord mirrors the scripts' encode (scripts.go), for tests of decodeRecord.
func encodeRecord(r Record) string {
	s, x, rest := "", int64(0), ""
	switch r.State {
	case Claimed:
		s, x, rest = "c", r.LeaseExpires.UnixMilli(), r.PreviousOwner
		if r.Note != nil {
			rest = "\n" + string(r.Note)
		}
	case Done:
		s, rest = "d", string(r.Outcome)
	case Released:
		s, rest = "r", string(r.Note)
	}
	return fmt.Sprintf("%s%d %d %d %d\n%s%s%s", s, r.Token, x, len(r.Owner), len(r.Fingerprint), r.Owner, r.Fingerprint, rest)
}

func TestDecodeRecord(t *testing.T) {
	lease := time.UnixMilli(1763690400123)
	tests := []struct {
		name string
		in   string
		want Record
	}{
		{"claimed", "c7 1763690400123 5 4\npod-afp-1",
			Record{State: Claimed, Token: 7, Owner: "pod-a", Fingerprint: "fp-1", LeaseExpires: lease}},
		{"claimed by a takeover", "c8 1763690400123 5 4\npod-bfp-1pod-a",
			Record{State: Claimed, Token: 8, Owner: "pod-b", Fingerprint: "fp-1", LeaseExpires: lease, PreviousOwner: "pod-a"}},
		{"done", "d2 0 1 2\nbf2{\"x\":\n1}",
			Record{State: Done, Token: 2, Owner: "b", Fingerprint: "f2", Outcome: []byte("{\"x\":\n1}")}},
		{"done, empty outcome", "d1 0 1 1\naf",
			Record{State: Done, Token: 1, Owner: "a", Fingerprint: "f", Outcome: []byte{}}},
		{"released", "r3 0 1 1\naf",
			Record{State: Released, Token: 3, Owner: "a", Fingerprint: "f"}},
		{"released with a note", "r3 0 1 1\naficbu/0@7",
			Record{State: Released, Token: 3, Owner: "a", Fingerprint: "f", Note: []byte("icbu/0@7")}},
		{"claimed after a noted release", "c4 5 1 1\nbf\nicbu/0@7",
			Record{State: Claimed, Token: 4, Owner: "b", Fingerprint: "f", LeaseExpires: time.UnixMilli(5), Note: []byte("icbu/0@7")}},
		{"owner with newline and spaces", "c1 5 3 1\na\n f",
			Record{State: Claimed, Token: 1, Owner: "a\n ", Fingerprint: "f", LeaseExpires: time.UnixMilli(5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeRecord(tt.in)
			if err != nil {
				t.Fatalf("decodeRecord(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decodeRecord(%q) (-want +got):\n%s", tt.in, diff)
			}
			if got := encodeRecord(tt.want); got != tt.in {
				t.Errorf("encodeRecord = %q, want %q", got, tt.in)
			}
		})
	}
}

func TestDecodeRecordMalformed(t *testing.T) {
	for _, in := range []string{
		"",
		"garbage",
		"c1 2 3 4",       // no body
		"x1 0 1 1\naf",   // unknown state
		"c1 0 1\naf",     // missing length
		"c1 0 1 1 1\naf", // extra field
		"c-1 0 1 1\naf",  // negative token
		"c+1 0 1 1\naf",  // signed token
		"c1 0 2 1\naf",   // lengths beyond the body
		"c1 0 9223372036854775807 9223372036854775807\naf",
		"c1 0 1 1\n",  // empty body
		"c 0 1 1\naf", // empty token
		"c1  1 1\naf", // empty expiry
	} {
		if r, err := decodeRecord(in); err == nil {
			t.Errorf("decodeRecord(%q) = %+v, want an error", in, r)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, s := range []string{"c7 1763690400123 5 4\npod-afp-1", "c8 1 5 4\npod-bfp-1pod-a", "d2 0 1 2\nbf2{}", "r3 0 1 1\naf", "c1 0 2 1\naf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := decodeRecord(in)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to something that decodes to the same record.
		again, err := decodeRecord(encodeRecord(r))
		if err != nil {
			t.Fatalf("decodeRecord(encodeRecord(%+v)): %v", r, err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Errorf("round trip of %q (-first +second):\n%s", in, diff)
		}
	})
}
