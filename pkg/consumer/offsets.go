package consumer

import (
	"sort"
	"sync"
)

// tracker follows one partition's fetched offsets and tells the highest offset that can be
// committed: every offset below it has finished. A fetched offset can also be dropped — given
// back unfinished because its topic paused — and fetched again later. Safe for concurrent use.
type tracker struct {
	mu      sync.Mutex
	pending []entry // fetched offsets in increasing order, from head on
	head    int
	next    int64 // one past the highest offset fetched; -1 before the first fetch
}

type entryState uint8

const (
	entryLive    entryState = iota // fetched, being worked on
	entryDone                      // finished
	entryDropped                   // given back; to be fetched again
)

type entry struct {
	offset int64
	state  entryState
}

func newTracker() *tracker { return &tracker{next: -1} }

// fetched records that offset was fetched and reports whether it is to be processed: false when
// the offset is already live or finished (a fetch that went back behind messages that were not
// dropped). Offsets above every fetched one are appended; lower ones must have been dropped.
func (t *tracker) fetched(offset int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if offset >= t.next {
		t.pending = append(t.pending, entry{offset: offset})
		t.next = offset + 1
		return true
	}
	i, ok := t.find(offset)
	if !ok || t.pending[t.head+i].state != entryDropped {
		return false
	}
	t.pending[t.head+i].state = entryLive
	return true
}

// find locates offset among the live part of pending (index relative to head).
func (t *tracker) find(offset int64) (int, bool) {
	live := t.pending[t.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].offset >= offset })
	return i, i < len(live) && live[i].offset == offset
}

// finish marks offset finished.
func (t *tracker) finish(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.find(offset)
	if !ok {
		return
	}
	t.pending[t.head+i].state = entryDone
	for t.head < len(t.pending) && t.pending[t.head].state == entryDone {
		t.head++
	}
	// Compact once the finished prefix dominates, so memory stays proportional to work in flight.
	if t.head > 64 && t.head*2 > len(t.pending) {
		n := copy(t.pending, t.pending[t.head:])
		t.pending = t.pending[:n]
		t.head = 0
	}
}

// drop marks offset given back: it stays uncommitted until fetched again and finished.
func (t *tracker) drop(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.find(offset); ok && t.pending[t.head+i].state == entryLive {
		t.pending[t.head+i].state = entryDropped
	}
}

// committable is the offset to commit (the next one to consume), or -1 when nothing was fetched.
func (t *tracker) committable() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.head < len(t.pending) {
		return t.pending[t.head].offset
	}
	return t.next
}

// outstanding is the number of fetched offsets not yet finished.
func (t *tracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.pending[t.head:] {
		if e.state != entryDone {
			n++
		}
	}
	return n
}
