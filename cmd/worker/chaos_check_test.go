package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dispatch"
)

// What the chaos soak reads back at the end and the guarantees it checks (see TestChaos).

// collect locates every event on its topic and waits until each has an outcome.
func (r *chaosRun) collect(events []testEvent, gen *chaosGen) {
	r.events, r.gen = events, gen
	byValue := map[[32]byte]coord{}
	for _, topic := range r.e.registry.Topics() {
		for _, m := range r.read(topic) {
			byValue[sha256.Sum256(m.Value)] = coord{m.Topic, m.Partition, m.Offset}
		}
	}
	r.at = make(map[string]coord, len(events))
	for _, ev := range events {
		c, ok := byValue[sha256.Sum256(ev.value)]
		if !ok {
			r.t.Fatalf("event %s (%s) is not on its topic", ev.eventID, ev.channel)
		}
		r.at[ev.eventID] = c
	}
	deadline := time.Now().Add(chaosDrainWait)
	for {
		for _, w := range r.workers {
			if !r.alive(w) {
				r.t.Fatal("a worker exited by itself; the backlog cannot drain")
			}
		}
		r.readOutcomes()
		var missing []string
		for _, ev := range events {
			if len(r.outs[r.at[ev.eventID]]) == 0 {
				missing = append(missing, fmt.Sprintf("%s (%s, %s at %s)", ev.eventID, ev.channel, r.gen.kind[ev.eventID], r.at[ev.eventID]))
			}
		}
		if len(missing) == 0 {
			r.logf("every event has an outcome")
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d of %d events have no outcome %s after the stream stopped, e.g. %s",
				len(missing), len(events), chaosDrainWait, strings.Join(missing[:min(len(missing), 10)], "; "))
		}
		time.Sleep(time.Second)
	}
}

// collectAgain re-reads the outcomes after the workers stopped, and the dead letters.
func (r *chaosRun) collectAgain() {
	r.readOutcomes()
	r.dlq = map[coord][]kafka.Message{}
	for _, m := range r.read(r.cfg.Kafka.DLQTopic) {
		p, err1 := strconv.Atoi(consumer.Header(m, consumer.HeaderSourcePartition))
		off, err2 := strconv.ParseInt(consumer.Header(m, consumer.HeaderSourceOffset), 10, 64)
		if err1 != nil || err2 != nil {
			r.problem("dead letter %d/%d without source coordinates", m.Partition, m.Offset)
			continue
		}
		c := coord{consumer.Header(m, consumer.HeaderSourceTopic), p, off}
		r.dlq[c] = append(r.dlq[c], m)
	}
}

func (r *chaosRun) readOutcomes() {
	r.outs = map[coord][]chaosOutcome{}
	r.byKey = map[string][]chaosOutcome{}
	msgs := r.read(r.cfg.Kafka.ResultsTopic)
	r.records = len(msgs)
	for _, m := range msgs {
		var o dispatch.Outcome
		if err := json.Unmarshal(m.Value, &o); err != nil {
			r.t.Fatalf("undecodable outcome %.200s: %v", m.Value, err)
		}
		at := m.Time
		if at.IsZero() {
			at = o.CompletedAt
		}
		co := chaosOutcome{o: o, at: at}
		c := coord{o.Source.Topic, o.Source.Partition, o.Source.Offset}
		r.outs[c] = append(r.outs[c], co)
		if o.IdempotencyKey != "" {
			r.byKey[o.Channel+" "+o.IdempotencyKey] = append(r.byKey[o.Channel+" "+o.IdempotencyKey], co)
		}
	}
	for _, outs := range r.outs {
		slices.SortStableFunc(outs, func(a, b chaosOutcome) int { return a.at.Compare(b.at) })
	}
}

func (r *chaosRun) read(topic string) []kafka.Message {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msgs, err := r.e.broker.ReadAll(ctx, topic, 0, 0)
	if err != nil {
		r.t.Fatalf("read %s: %v", topic, err)
	}
	return msgs
}

func isAmbiguous(o dispatch.Outcome) bool {
	return o.Status == dispatch.StatusFailed && o.Error != nil && o.Error.Kind == dispatch.KindAmbiguous
}

// between reports whether one of ts falls in (from, to].
func between(from, to time.Time, ts []time.Time) bool {
	for _, t := range ts {
		if t.After(from) && !t.After(to) {
			return true
		}
	}
	return false
}

// checkOutcomes checks each event's outcomes: their number, their status, and that repeats
// follow a reassignment of the partition and are identical.
func (r *chaosRun) checkOutcomes() {
	r.t.Helper()
	known := map[coord]bool{}
	for _, ev := range r.events {
		c := r.at[ev.eventID]
		known[c] = true
		outs := r.outs[c]
		for _, x := range outs {
			if !r.statusOK(ev, x.o) {
				r.problem("event %s (%s, %s at %s): outcome %s %+v, want %s", ev.eventID, ev.channel, r.gen.kind[ev.eventID], c, x.o.Status, x.o.Error, r.want(ev))
			}
			// An event too large or undecodable may have no event_id in its outcome (the worker
			// does not parse it); every other one names its own.
			k := r.gen.kind[ev.eventID]
			if x.o.EventID != ev.eventID && !(x.o.EventID == "" && (k == kindBig || k == kindGarbage)) {
				r.problem("event %s at %s: outcome names event %q", ev.eventID, c, x.o.EventID)
			}
		}
		// A repeat comes from a redelivery: the partition was assigned anew (after a kill, or the
		// rebalance that a kill or a restart started) before its offset was committed.
		for i := 1; i < len(outs); i++ {
			prev, x := outs[i-1], outs[i]
			redis := r.forgets(prev.at, x.at)
			switch {
			case !between(prev.o.ReceivedAt, x.at, r.assigned):
				// (From the start of the earlier processing: a member expelled while it drained
				// may publish after its partition was given to another.)
				r.problem("event %s (%s at %s): processed from %s, published %s and again %s with no partition assignment between",
					ev.eventID, ev.channel, c, prev.o.ReceivedAt.Format("15:04:05.000"), prev.at.Format("15:04:05.000"), x.at.Format("15:04:05.000"))
			case redis:
				// The store forgot the key: the redelivery was processed afresh; each outcome
				// stands on its own (checked above).
			case isAmbiguous(prev.o) && isAmbiguous(x.o) && x.o.RequestID == "":
				// Ambiguous again without a call: the code may say why (taken over, redelivered).
			case isAmbiguous(prev.o) && x.o.RequestID != prev.o.RequestID:
				r.problem("event %s (%s at %s): failed/ambiguous (request %s) at %s, then redelivered and called again: %s %s/%s (request %s) at %s — see TestFindingAmbiguousEventCalledAgainAfterKill",
					ev.eventID, ev.channel, c, prev.o.RequestID, prev.at.Format("15:04:05.000"), x.o.Status, errKind(x.o), errCode(x.o), x.o.RequestID, x.at.Format("15:04:05.000"))
			case x.o.Status != prev.o.Status || errKind(x.o) != errKind(prev.o) || errCode(x.o) != errCode(prev.o) || x.o.RequestID != prev.o.RequestID:
				r.problem("event %s (%s at %s): repeated outcomes differ with no Redis restart between them: %s %s/%s (request %s) at %s, then %s %s/%s (request %s) at %s",
					ev.eventID, ev.channel, c, prev.o.Status, errKind(prev.o), errCode(prev.o), prev.o.RequestID, prev.at.Format("15:04:05.000"),
					x.o.Status, errKind(x.o), errCode(x.o), x.o.RequestID, x.at.Format("15:04:05.000"))
			}
		}
	}
	for c := range r.outs {
		if !known[c] {
			r.problem("an outcome for %s, which is no event of the soak", c)
		}
	}
}

// statusOK says whether o is a status ev may end with (see TestChaos).
func (r *chaosRun) statusOK(ev testEvent, o dispatch.Outcome) bool {
	icbu := ev.channel == "icbu-trade"
	switch r.gen.kind[ev.eventID] {
	case kindBig, kindMalformed, kindPadBad, kindGarbage:
		return o.Status == dispatch.StatusRejected && errKind(o) == dispatch.KindValidation
	case kindValid, kindPadded:
		// A duplicate when a re-send completed the key before this event came again (its
		// own outcome was not stored: ambiguous, or forgotten by a Redis restart).
		return o.Status == dispatch.StatusSucceeded || icbu && isAmbiguous(o) ||
			o.Status == dispatch.StatusDuplicate && r.completedByOther(ev, o.CompletedAt)
	case kindResend:
		switch {
		case o.Status == dispatch.StatusDuplicate, icbu && isAmbiguous(o):
			return true
		case o.Status == dispatch.StatusSucceeded:
			return r.keyAmbiguous(ev.channel, ev.key) || r.forgotten(ev.channel, ev.key, o.CompletedAt)
		}
	}
	return false
}

func (r *chaosRun) want(ev testEvent) string {
	switch k := r.gen.kind[ev.eventID]; {
	case k == kindResend:
		return "duplicate (succeeded only after an ambiguous outcome of its key or a Redis restart since the key completed)"
	case ev.channel == "icbu-trade" && ev.want == dispatch.StatusSucceeded:
		return "succeeded or failed/ambiguous"
	default:
		return ev.want
	}
}

// keyAmbiguous reports whether an event of the key got an ambiguous outcome.
func (r *chaosRun) keyAmbiguous(channel, key string) bool {
	for _, x := range r.byKey[channel+" "+key] {
		if isAmbiguous(x.o) {
			return true
		}
	}
	return false
}

// completedByOther reports whether another event of ev's key succeeded before ev's outcome
// completed at done. (Not before it started: a claim can land long after the start, when Redis
// was down meanwhile.)
func (r *chaosRun) completedByOther(ev testEvent, done time.Time) bool {
	for _, x := range r.byKey[ev.channel+" "+ev.key] {
		if x.o.EventID != ev.eventID && x.o.Status == dispatch.StatusSucceeded && x.o.CompletedAt.Before(done) {
			return true
		}
	}
	return false
}

// forgotten reports whether a Redis restart fell after an outcome of the key completed and before
// another completed at done (whose claim may have landed any time before that, however early it
// started): the emptied store no longer knew the key.
func (r *chaosRun) forgotten(channel, key string, done time.Time) bool {
	for _, x := range r.byKey[channel+" "+key] {
		if r.forgets(x.o.CompletedAt, done) {
			return true
		}
	}
	return false
}

func errKind(o dispatch.Outcome) string {
	if o.Error == nil {
		return ""
	}
	return o.Error.Kind
}

func errCode(o dispatch.Outcome) string {
	if o.Error == nil {
		return ""
	}
	return o.Error.Code
}

// checkDeadLetters checks that exactly the rejected and failed (exhausted, auth, ambiguous) events
// have dead letters, that each fits, and that large ones are reduced.
func (r *chaosRun) checkDeadLetters() {
	r.t.Helper()
	known := map[coord]bool{}
	for _, ev := range r.events {
		c := r.at[ev.eventID]
		known[c] = true
		dead := false
		for _, x := range r.outs[c] {
			switch {
			case x.o.Status == dispatch.StatusRejected:
				dead = true
			case x.o.Status == dispatch.StatusFailed && slices.Contains([]string{dispatch.KindExhausted, dispatch.KindAuth, dispatch.KindAmbiguous}, errKind(x.o)):
				dead = true
			}
		}
		dls := r.dlq[c]
		switch {
		case dead && len(dls) == 0:
			r.problem("event %s (%s, %s at %s) has no dead letter", ev.eventID, ev.channel, r.gen.kind[ev.eventID], c)
		case !dead && len(dls) > 0:
			// Its failed outcome was lost to a kill (the dead letter was written, the outcome
			// not), and the redelivered event was processed again: a call declared ambiguous
			// ("not repeated") was repeated (see TestFindingAmbiguousEventCalledAgainAfterKill).
			r.problem("event %s (%s at %s) has %d dead letter(s) (%.120s) but outcome %s (request %s)",
				ev.eventID, ev.channel, c, len(dls), consumer.Header(dls[0], consumer.HeaderError), r.outs[c][0].o.Status, r.outs[c][0].o.RequestID)
		}
		reduced := len(ev.value)+4<<10 > chaosMaxRecord
		for _, d := range dls {
			size := len(d.Key) + len(d.Value)
			for _, h := range d.Headers {
				size += len(h.Key) + len(h.Value)
			}
			if size > chaosMaxRecord {
				r.problem("dead letter of %s: %d bytes, more than kafka.max_record_bytes %d", ev.eventID, size, chaosMaxRecord)
			}
			if !reduced {
				if !bytes.Equal(d.Value, ev.value) || consumer.Header(d, consumer.HeaderValueTruncated) != "" {
					r.problem("dead letter of %s (%d bytes): value %d bytes (truncated %q), want the original", ev.eventID, len(ev.value), len(d.Value), consumer.Header(d, consumer.HeaderValueTruncated))
				}
				continue
			}
			if consumer.Header(d, consumer.HeaderValueTruncated) != "true" || consumer.Header(d, consumer.HeaderValueBytes) != strconv.Itoa(len(ev.value)) || !bytes.HasPrefix(ev.value, d.Value) {
				r.problem("dead letter of %s (%s, %d bytes): %s=%q %s=%q, value %d bytes; want it reduced, naming the original size, value a prefix of the original",
					ev.eventID, r.gen.kind[ev.eventID], len(ev.value), consumer.HeaderValueTruncated, consumer.Header(d, consumer.HeaderValueTruncated),
					consumer.HeaderValueBytes, consumer.Header(d, consumer.HeaderValueBytes), len(d.Value))
			}
		}
	}
	for c := range r.dlq {
		if !known[c] {
			r.problem("a dead letter for %s, which is no event of the soak", c)
		}
	}
}

// repeats counts the explained repeated successful platform calls.
type repeats struct{ kills, redis, ambiguous int }

// checkPlatformCalls checks that no (method, key) succeeded twice except as TestChaos allows, and
// counts the repeats it allows.
func (r *chaosRun) checkPlatformCalls() {
	r.t.Helper()
	rep := &r.repeats
	// Which event each successful call was reported to (by request id), and the platform keys of
	// the icbu-trade events that got an ambiguous outcome.
	owner := map[string]string{}
	ambiguous := map[string]bool{}
	for _, ev := range r.events {
		for _, x := range r.outs[r.at[ev.eventID]] {
			if x.o.Status == dispatch.StatusSucceeded && x.o.RequestID != "" {
				owner[x.o.RequestID] = ev.eventID
			}
			if isAmbiguous(x.o) {
				ambiguous[r.e.platformKey(ev)] = true
			}
		}
	}
	byKey := map[string][]platformCall{}
	for _, c := range r.calls.snapshot() {
		if c.ok {
			byKey[c.key] = append(byKey[c.key], c)
		}
	}
	for key, cs := range byKey {
		icbu := strings.HasPrefix(key, "alibaba.trade.order.create ")
		for i := 1; i < len(cs); i++ {
			a, b := cs[i-1], cs[i]
			// A kill with a's call in flight: sent before the worker was gone (a request it
			// wrote just before may be read up to chaosReadSlack later), answered at most
			// chaosInFlight before that (or after it: the platform finished a dead worker's call).
			inFlightKill := false
			for _, k := range r.kills {
				if k.Add(chaosReadSlack).After(a.sent) && !k.After(b.at) && k.Sub(a.at) <= chaosInFlight {
					inFlightKill = true
				}
			}
			// The same event called again (the first caller may have died before reporting
			// its call), or another event of the key (a re-send).
			sameEvent := owner[a.requestID] == "" || owner[a.requestID] == owner[b.requestID]
			redelivered := between(a.sent, b.at, r.assigned)
			pair := fmt.Sprintf("%s: sent %s, answered %s (request %s, event %q); again %s (request %s, event %q)",
				key, a.sent.Format("15:04:05.000"), a.at.Format("15:04:05.000"), a.requestID, owner[a.requestID],
				b.at.Format("15:04:05.000"), b.requestID, owner[b.requestID])
			switch {
			case icbu && ambiguous[key]:
				rep.ambiguous++
				r.logf("repeat after an ambiguous outcome: %s", pair)
			case r.forgets(a.at, b.at) && (!sameEvent || redelivered):
				rep.redis++
				r.logf("repeat across a Redis restart: %s", pair)
			case !icbu && sameEvent && inFlightKill:
				rep.kills++
				r.logf("repeat across a kill: %s", pair)
			default:
				r.problem("platform: %s succeeded at %s (request %s, event %q) and again at %s (request %s, event %q): no kill with the call in flight, no Redis restart, no ambiguous outcome explains it",
					key, a.at.Format("15:04:05.000"), a.requestID, owner[a.requestID], b.at.Format("15:04:05.000"), b.requestID, owner[b.requestID])
			}
		}
	}
}

// summary is the one line the soak prints.
func (r *chaosRun) summary(events []testEvent, soaked, drained time.Duration) string {
	kinds := map[chaosKind]int{}
	for _, ev := range events {
		kinds[r.gen.kind[ev.eventID]]++
	}
	ambiguous, takenOver := 0, 0
	for _, ev := range events {
		for _, x := range r.outs[r.at[ev.eventID]] {
			if isAmbiguous(x.o) {
				ambiguous++
				if x.o.Error.Code == "taken-over" {
					takenOver++
				}
				break
			}
		}
	}
	dls, reduced := 0, 0
	for _, ds := range r.dlq {
		for _, d := range ds {
			dls++
			if consumer.Header(d, consumer.HeaderValueTruncated) == "true" {
				reduced++
			}
		}
	}
	calls := r.calls.snapshot()
	ok := 0
	for _, c := range calls {
		if c.ok {
			ok++
		}
	}
	rep := r.repeats
	return fmt.Sprintf("chaos: %s soak + %s drain, %d events (%d valid, %d re-sent, %d malformed, %d undecodable, %d padded 400 KiB, %d padded malformed, %d oversized 2 MiB), "+
		"%d outcomes for them (%d repeats), %d dead letters (%d reduced), %d kills, %d Redis restarts, %d platform calls (%d succeeded; repeated: %d across kills, %d across Redis restarts, %d after ambiguous), "+
		"%d ambiguous outcomes (%d taken over), peak RSS %d MiB (bound %d MiB), %d workers run, seed %d",
		soaked.Round(100*time.Millisecond), drained.Round(100*time.Millisecond), len(events),
		kinds[kindValid], kinds[kindResend], kinds[kindMalformed], kinds[kindGarbage], kinds[kindPadded], kinds[kindPadBad], kinds[kindBig],
		r.records, r.records-len(r.outs), dls, reduced, len(r.kills), len(r.redis), len(calls), ok, rep.kills, rep.redis, rep.ambiguous,
		ambiguous, takenOver, r.peakKiB>>10, r.bound()>>10, len(r.all), r.seed)
}
