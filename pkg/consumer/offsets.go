package consumer

import (
	"sort"
	"sync"
)

// tracker follows one partition's fetched offsets and tells the highest offset that can be
// committed: every offset below it has finished. Safe for concurrent use.
type tracker struct {
	mu        sync.Mutex
	pending   []entry // fetched offsets in increasing order, from head on
	head      int
	next      int64 // one past the highest offset fetched; -1 before the first fetch
	committed int64 // last offset committed, -1 when none
}

type entry struct {
	offset int64
	done   bool
}

func newTracker(committed int64) *tracker {
	return &tracker{next: -1, committed: committed}
}

// fetched records that offset was handed out. Offsets must increase.
func (t *tracker) fetched(offset int64) {
	t.mu.Lock()
	t.pending = append(t.pending, entry{offset: offset})
	t.next = offset + 1
	t.mu.Unlock()
}

// finish marks offset finished.
func (t *tracker) finish(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := t.pending[t.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].offset >= offset })
	if i == len(live) || live[i].offset != offset {
		return
	}
	live[i].done = true
	for t.head < len(t.pending) && t.pending[t.head].done {
		t.head++
	}
	// Compact once the finished prefix dominates, so memory stays proportional to work in flight.
	if t.head > 64 && t.head*2 > len(t.pending) {
		n := copy(t.pending, t.pending[t.head:])
		t.pending = t.pending[:n]
		t.head = 0
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
		if !e.done {
			n++
		}
	}
	return n
}
