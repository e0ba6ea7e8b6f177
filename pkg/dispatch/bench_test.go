package dispatch

import "testing"

// BenchmarkPrepare measures what the worker does with each consumed event
// before the gateway call: DecodeEnvelope, then Prepare (strict decoding and
// validation of the request, key, fingerprint, form parameters), on each
// channel's seed event.
func BenchmarkPrepare(b *testing.B) {
	r := registry(b)
	events := SeedEvents()
	for _, id := range ChannelIDs() {
		c, _ := r.ByID(id)
		value := events[id]
		b.Run(id, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				env, err := DecodeEnvelope(value, 0)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Prepare(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckParams measures the simulator's check of one call.
func BenchmarkCheckParams(b *testing.B) {
	r := registry(b)
	for _, id := range ChannelIDs() {
		c, _ := r.ByID(id)
		p, err := c.Prepare(mustDecode(b, SeedEvents()[id]))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(id, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.CheckParams(c.Method, p.Request.Params); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
