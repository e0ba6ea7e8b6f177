package pipeline

import (
	"maps"
	"sync/atomic"
)

// Sessions maps sellers to their session keys. Store replaces the whole map at once (a reloaded
// sessions file), while Lookup goes on in other goroutines. Session keys are secrets: nothing
// here prints them. The zero value holds no session. Safe for concurrent use.
type Sessions struct {
	m atomic.Pointer[map[string]string]
}

// NewSessions returns Sessions holding a copy of m.
func NewSessions(m map[string]string) *Sessions {
	s := new(Sessions)
	s.Store(m)
	return s
}

// Store replaces the sessions with a copy of m.
func (s *Sessions) Store(m map[string]string) {
	c := maps.Clone(m)
	s.m.Store(&c)
}

// Lookup returns seller's session key.
func (s *Sessions) Lookup(seller string) (string, bool) {
	if s == nil {
		return "", false
	}
	m := s.m.Load()
	if m == nil {
		return "", false
	}
	k, ok := (*m)[seller]
	return k, ok && k != ""
}

// Len returns the number of sellers with a session.
func (s *Sessions) Len() int {
	if s == nil || s.m.Load() == nil {
		return 0
	}
	return len(*s.m.Load())
}
