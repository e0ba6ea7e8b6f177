package consumer

import (
	"sync"
	"time"
)

// workers runs tasks on goroutines that outlive them: a goroutine that finished a task waits a
// while for the next one. A task's call chain (pipeline, Redis, HTTP) grows a fresh goroutine's
// stack several times over; a kept goroutine has grown it already. At most one goroutine per
// in-flight slot exists, since every task holds one.
type workers struct {
	jobs chan func() // unbuffered: a send succeeds only when a worker is waiting
	done chan struct{}
	wg   sync.WaitGroup
	stop sync.Once
}

// workerIdle is how long a worker waits for the next task before it exits.
const workerIdle = 10 * time.Second

func newWorkers() *workers { return &workers{jobs: make(chan func()), done: make(chan struct{})} }

// run runs f on a waiting worker, or on a new one.
func (w *workers) run(f func()) {
	select {
	case w.jobs <- f:
	default:
		w.wg.Add(1)
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	defer w.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-w.jobs:
		case <-idle.C:
			return
		case <-w.done:
			return
		}
	}
}

// close makes waiting workers exit and waits for every worker; no task may be running or
// submitted any more.
func (w *workers) close() {
	w.stop.Do(func() { close(w.done) })
	w.wg.Wait()
}
