package session

import (
	"context"
	"sync"
)

// watchBuffer is the capacity of each Watch channel. A watcher that falls
// this far behind misses events instead of stalling the store.
const watchBuffer = 256

// Watchers fans a store's events out to every channel its Watch handed
// out, so that each store (Memory, the embedded one through it, Redis)
// does not write its own. The zero value is ready to use; all methods
// are safe for concurrent use.
//
// Emit never blocks: each watcher has a buffer of 256 events, and one
// that is full misses the events that do not fit, while the others get
// them. A watcher's channel is closed when its context ends or Close is
// called, whichever comes first, and only then.
type Watchers struct {
	mu       sync.RWMutex
	channels map[chan Event]func() bool // channel → stop of its context.AfterFunc
	closed   bool
}

// Watch returns a new channel of the events emitted from now on, closed
// when ctx ends or w is closed. After Close it returns a closed channel.
func (w *Watchers) Watch(ctx context.Context) <-chan Event {
	ch := make(chan Event, watchBuffer)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		close(ch)
		return ch
	}
	if w.channels == nil {
		w.channels = make(map[chan Event]func() bool)
	}
	// AfterFunc, not a goroutine per watcher: remove runs when ctx ends.
	// It takes w.mu, so it waits until this function has registered ch.
	w.channels[ch] = context.AfterFunc(ctx, func() { w.remove(ch) })
	return ch
}

func (w *Watchers) remove(ch chan Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.channels[ch]; ok {
		delete(w.channels, ch)
		close(ch)
	}
}

// Emit sends each event, in order, to every watcher that has room for it.
// Channels are closed only under the write lock, so a send here never
// hits a closed one.
func (w *Watchers) Emit(events ...Event) {
	if len(events) == 0 {
		return
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	for ch := range w.channels {
		for _, ev := range events {
			select {
			case ch <- ev:
			default: // full: this watcher misses the event
			}
		}
	}
}

// Close closes every watcher's channel; later Watch calls get a closed
// one and Emit reaches no one. It is safe to call more than once.
func (w *Watchers) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for ch, stop := range w.channels {
		stop()
		delete(w.channels, ch)
		close(ch)
	}
}
