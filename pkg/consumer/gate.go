package consumer

import (
	"context"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// A gate is one pause in force, in one of three states:
//
//   - closed: no message of the covered topics is fetched or processed; one that reaches the
//     processor anyway (fetched before the pause) is dropped — its slot freed, its partition
//     rewound to it — so a pause holds no memory and no slot.
//   - probing: at the probe time one message of the covered topics may be fetched and processed.
//     If it meets the same pause, the gate closes again (with backoff when the pause gave no end
//     time); otherwise the pause is over and the gate ramps.
//   - ramping: the covered topics are fetched again with a bound on how many of their messages
//     are in flight, doubling every RampStep from 1 until it reaches MaxInFlight; then the gate
//     goes away.
type gateState int

const (
	gateClosed gateState = iota
	gateProbing
	gateRamping
)

type gate struct {
	p        Pause
	topics   map[string]bool // nil: every topic
	state    gateState
	since    time.Time
	until    time.Time   // closed: the probe time
	failures int         // consecutive failed probes
	timer    *time.Timer // closed: fires at until; ramping: fires every RampStep
	probe    *task       // probing: the admitted probe, nil until a fetch loop took it
	limit    int         // ramping: messages of the covered topics allowed in flight
	inflight int         // ramping: admitted messages not yet done
}

func (g *gate) covers(topic string) bool { return g.topics == nil || g.topics[topic] }

// holding reports whether g holds work back: closed, or probing with a probe under way. A
// probing gate whose topics bring no message to probe with holds nothing back.
func (g *gate) holding() bool {
	return g.state == gateClosed || g.state == gateProbing && g.probe != nil
}

// ticket records which gates admitted a task; the task gives it back when it is done.
type ticket struct {
	probe *gate   // the task is this gate's probe
	ramps []*gate // ramping gates that counted the task
}

// gates holds the pauses in force. It is safe for concurrent use. Lock order: gates.mu before
// any partition's mu.
type gates struct {
	c *Consumer

	mu      sync.Mutex
	byScope map[string]*gate
	changed chan struct{} // closed and replaced on every change
	reasons map[string]bool
	stopped bool

	n atomic.Int32 // len(byScope): lets the hot path skip the lock when nothing is paused
}

func newGates(c *Consumer) *gates {
	return &gates{c: c, byScope: make(map[string]*gate), changed: make(chan struct{}), reasons: make(map[string]bool)}
}

// broadcast wakes everyone waiting for a change; gs.mu held.
func (gs *gates) broadcast() {
	close(gs.changed)
	gs.changed = make(chan struct{})
	gs.n.Store(int32(len(gs.byScope)))
}

// probePending stands for a probe admitted but not yet bound to its task.
var probePending = new(task)

// admission is what admit decided.
type admission int

const (
	admitted admission = iota
	paused             // a closed gate: fetch nothing of the topic
	waiting            // another message probes, or a ramping gate is at its bound: wait, keep what was fetched
)

// admit decides whether one more message of topic may be fetched and processed now. When it may,
// the ticket records the probe or ramp it counts against, and must be bound to a task with claim
// or given back with unadmit; when it may not, changed is closed at the next change of any gate.
func (gs *gates) admit(topic string) (tk ticket, a admission, changed <-chan struct{}) {
	if gs.n.Load() == 0 {
		return ticket{}, admitted, nil
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	var probe *gate
	var ramps []*gate
	for _, g := range gs.byScope {
		if !g.covers(topic) {
			continue
		}
		switch g.state {
		case gateClosed:
			return ticket{}, paused, gs.changed
		case gateProbing:
			if g.probe != nil || probe != nil {
				return ticket{}, waiting, gs.changed
			}
			probe = g
		case gateRamping:
			if g.inflight >= g.limit {
				return ticket{}, waiting, gs.changed
			}
			ramps = append(ramps, g)
		}
	}
	for _, g := range ramps {
		g.inflight++
	}
	if probe != nil {
		probe.probe = probePending
	}
	return ticket{probe: probe, ramps: ramps}, admitted, nil
}

// fetchable reports whether topic may be fetched (no closed gate covers it), and the channel
// that is closed at the next change. Fetching while a gate probes or ramps is allowed: a message
// must be in hand to be admitted as the probe, and admission bounds what is dispatched.
func (gs *gates) fetchable(topic string) (bool, <-chan struct{}) {
	if gs.n.Load() == 0 {
		return true, nil
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	for _, g := range gs.byScope {
		if g.state == gateClosed && g.covers(topic) {
			return false, gs.changed
		}
	}
	return true, gs.changed
}

// claim binds an admitted ticket to its task (a probe gate learns its probe).
func (gs *gates) claim(t *task) {
	if t.tk.probe == nil {
		return
	}
	gs.mu.Lock()
	if t.tk.probe.probe == probePending {
		t.tk.probe.probe = t
	}
	gs.mu.Unlock()
}

// unadmit gives back a ticket that no task used.
func (gs *gates) unadmit(tk ticket) {
	if tk.probe == nil && len(tk.ramps) == 0 {
		return
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if g := tk.probe; g != nil && g.probe == probePending {
		g.probe = nil
	}
	for _, g := range tk.ramps {
		if g.state == gateRamping && g.inflight > 0 {
			g.inflight--
		}
	}
	gs.broadcast()
}

// blocked reports whether a closed gate (or another gate's probe) now stands before t: the task
// is to be dropped rather than processed.
func (gs *gates) blocked(t *task) bool {
	if gs.n.Load() == 0 {
		return false
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	for _, g := range gs.byScope {
		if g.covers(t.p.topic) && (g.state == gateClosed || g.state == gateProbing && g != t.tk.probe) {
			return true
		}
	}
	return false
}

// pause records that t met p. A probe meeting its own gate's condition closes the gate again,
// with backoff; a probe meeting another condition ends its own gate's pause.
func (gs *gates) pause(p *Pause, t *task) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.stopped {
		return
	}
	now := time.Now()
	if own := t.tk.probe; own != nil {
		t.tk.probe = nil
		if gs.byScope[own.p.Scope] == own && own.probe == t {
			if own.p.Scope != p.Scope {
				gs.open(own, now)
			} else {
				own.failures++
				own.p.Err = p.Err
				gs.schedule(own, p.Until, now)
				gs.c.log.Debug("probe met the pause again", "reason", p.Reason, "scope", p.Scope, "probe_at", own.until, "err", p.Err)
				gs.broadcast()
				return
			}
		}
	}
	g, ok := gs.byScope[p.Scope]
	if !ok {
		g = &gate{p: *p, since: now}
		if p.Topics != nil {
			g.topics = make(map[string]bool, len(p.Topics))
			for _, topic := range p.Topics {
				g.topics[topic] = true
			}
		}
		gs.byScope[p.Scope] = g
		gs.reasons[p.Reason] = true
		gs.schedule(g, p.Until, now)
		gs.c.log.Log(context.Background(), p.Level, "intake paused", "reason", p.Reason, "scope", p.Scope,
			"topics", topicList(p.Topics), "probe_at", g.until, "err", p.Err)
		gs.broadcast()
		return
	}
	switch g.state {
	case gateRamping, gateProbing:
		// The condition is back while the topics were resuming.
		g.failures++
		g.p.Err = p.Err
		gs.schedule(g, p.Until, now)
		gs.c.log.Log(context.Background(), p.Level, "intake paused again", "reason", p.Reason, "scope", p.Scope, "probe_at", g.until, "err", p.Err)
		gs.broadcast()
	case gateClosed:
		if p.Until.After(g.until) {
			gs.schedule(g, p.Until, now)
		}
	}
}

// schedule closes g until the given time, or for the probe backoff when until is zero; gs.mu held.
func (gs *gates) schedule(g *gate, until, now time.Time) {
	if until.IsZero() || !until.After(now) {
		d := gs.c.cfg.ProbeInterval << min(g.failures, 16)
		until = now.Add(min(d, gs.c.cfg.MaxProbeInterval))
	}
	g.state, g.until, g.probe, g.limit, g.inflight = gateClosed, until, nil, 0, 0
	if g.timer != nil {
		g.timer.Stop()
	}
	g.timer = time.AfterFunc(time.Until(until), func() { gs.startProbe(g) })
}

// startProbe lets one message of g's topics through.
func (gs *gates) startProbe(g *gate) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.stopped || gs.byScope[g.p.Scope] != g || g.state != gateClosed {
		return
	}
	g.state, g.until, g.probe = gateProbing, time.Time{}, nil
	gs.c.log.Debug("probing", "reason", g.p.Reason, "scope", g.p.Scope)
	gs.broadcast()
}

// passed records that t got past whatever it was probing: that pause is over.
func (gs *gates) passed(t *task) {
	if t.tk.probe == nil {
		return
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	g := t.tk.probe
	t.tk.probe = nil
	if gs.stopped || gs.byScope[g.p.Scope] != g || g.probe != t {
		return
	}
	gs.open(g, time.Now())
}

// open ends g's pause: its topics resume with a ramp; gs.mu held.
func (gs *gates) open(g *gate, now time.Time) {
	if g.timer != nil {
		g.timer.Stop()
	}
	g.state, g.probe, g.failures, g.limit, g.inflight = gateRamping, nil, 0, 1, 0
	gs.c.log.Info("intake resumed", "reason", g.p.Reason, "scope", g.p.Scope, "paused_for", now.Sub(g.since).Round(time.Millisecond))
	g.timer = time.AfterFunc(gs.c.cfg.RampStep, func() { gs.rampUp(g) })
	gs.broadcast()
}

// rampUp doubles g's in-flight bound, or removes g once the bound no longer binds.
func (gs *gates) rampUp(g *gate) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.stopped || gs.byScope[g.p.Scope] != g || g.state != gateRamping {
		return
	}
	g.limit *= 2
	if g.limit >= gs.c.cfg.MaxInFlight {
		delete(gs.byScope, g.p.Scope)
	} else {
		g.timer = time.AfterFunc(gs.c.cfg.RampStep, func() { gs.rampUp(g) })
	}
	gs.broadcast()
}

// done gives t's ticket back when t is finished, dropped or abandoned. A probe that ended
// without a verdict (dropped behind another pause, abandoned at a revoke) leaves its gate closed
// for another probe, without counting a failure.
func (gs *gates) done(t *task) {
	if t.tk.probe == nil && len(t.tk.ramps) == 0 {
		return
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if g := t.tk.probe; g != nil && !gs.stopped && gs.byScope[g.p.Scope] == g && g.state == gateProbing && g.probe == t {
		gs.schedule(g, time.Time{}, time.Now())
	}
	for _, g := range t.tk.ramps {
		if g.state == gateRamping && g.inflight > 0 {
			g.inflight--
		}
	}
	t.tk = ticket{}
	gs.broadcast()
}

// published ends an "unwritable" pause: a record was written.
func (gs *gates) published() {
	if gs.n.Load() == 0 {
		return
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if g := gs.byScope["unwritable"]; g != nil && g.state != gateRamping && !gs.stopped {
		gs.open(g, time.Now())
	}
}

// probeNow brings forward to now the probe of every closed gate of the reason (for example when
// the credentials file changed).
func (gs *gates) probeNow(reason string) {
	gs.mu.Lock()
	var due []*gate
	for _, g := range gs.byScope {
		if g.p.Reason == reason && g.state == gateClosed {
			g.failures = 0
			due = append(due, g)
		}
	}
	gs.mu.Unlock()
	for _, g := range due {
		gs.startProbe(g)
	}
}

// states describes the gates that hold work back, sorted by scope.
func (gs *gates) states() []PauseState {
	if gs.n.Load() == 0 {
		return nil
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	var out []PauseState
	for _, g := range gs.byScope {
		if !g.holding() {
			continue
		}
		s := PauseState{Scope: g.p.Scope, Reason: g.p.Reason, Topics: slices.Clone(g.p.Topics), Since: g.since,
			Until: g.until, Probing: g.state == gateProbing}
		if g.p.Err != nil {
			s.Err = g.p.Err.Error()
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Scope < out[j].Scope })
	return out
}

// pausedReasons returns, for every reason ever seen, whether a gate of that reason holds
// processing back.
func (gs *gates) pausedReasons() map[string]bool {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	out := make(map[string]bool, len(gs.reasons))
	for r := range gs.reasons {
		out[r] = false
	}
	for _, g := range gs.byScope {
		if g.holding() {
			out[g.p.Reason] = true
		}
	}
	return out
}

// stop ends every gate's timer; called when the consumer stops.
func (gs *gates) stop() {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.stopped = true
	for _, g := range gs.byScope {
		if g.timer != nil {
			g.timer.Stop()
		}
	}
	gs.broadcast()
}

func topicList(topics []string) any {
	if topics == nil {
		return "all"
	}
	return topics
}
