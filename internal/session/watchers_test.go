package session_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/session"
)

// watchWait bounds waiting for something Watchers does at once; it is a
// guard against a hang, not a delay.
const watchWait = 5 * time.Second

func numberedEvent(i int) session.Event {
	return session.Event{Kind: session.Deleted, Prefix: "vp", ID: "s" + strconv.Itoa(i), UserDirectory: "D", UserID: "u"}
}

// receive reads n events from ch, failing when it closes or stays empty.
func receive(t *testing.T, ch <-chan session.Event, n int) []session.Event {
	t.Helper()
	got := make([]session.Event, 0, n)
	for len(got) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d events", len(got), n)
			}
			got = append(got, ev)
		case <-time.After(watchWait):
			t.Fatalf("%d of %d events within %s", len(got), n, watchWait)
		}
	}
	return got
}

// waitClosed fails unless ch is closed (after any events still buffered).
func waitClosed(t *testing.T, ch <-chan session.Event) {
	t.Helper()
	deadline := time.After(watchWait)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("channel still open after %s", watchWait)
		}
	}
}

// stillOpen fails if ch is closed or holds an event.
func stillOpen(t *testing.T, ch <-chan session.Event) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		t.Fatalf("got %+v, %v; want an open, empty channel", ev, ok)
	default:
	}
}

func TestWatchersDeliverEveryEventToEveryWatcherInOrder(t *testing.T) {
	t.Parallel()
	var w session.Watchers // the zero value is ready
	defer w.Close()
	ctx := context.Background()
	chans := []<-chan session.Event{w.Watch(ctx), w.Watch(ctx), w.Watch(ctx)}
	var want []session.Event
	for i := range 100 {
		want = append(want, numberedEvent(i))
	}
	w.Emit(want[:1]...) // one at a time, as the Redis subscriber does
	w.Emit(want[1:]...) // a batch, as a sweep does
	w.Emit()            // nothing to say
	for i, ch := range chans {
		got := receive(t, ch, len(want))
		for j := range want {
			if got[j] != want[j] {
				t.Fatalf("watcher %d: event %d is %+v, want %+v", i, j, got[j], want[j])
			}
		}
		stillOpen(t, ch)
	}
}

func TestWatchersSeeOnlyEventsAfterWatch(t *testing.T) {
	t.Parallel()
	var w session.Watchers
	defer w.Close()
	w.Emit(numberedEvent(0))
	ch := w.Watch(context.Background())
	w.Emit(numberedEvent(1))
	if got := receive(t, ch, 1)[0]; got != numberedEvent(1) {
		t.Fatalf("got %+v, want only the event after Watch", got)
	}
	stillOpen(t, ch)
}

// A watcher that stops reading neither blocks Emit nor costs the others
// an event: it keeps the first buffer's worth and misses the rest.
func TestWatcherThatStopsReadingBlocksNoOne(t *testing.T) {
	t.Parallel()
	var w session.Watchers
	defer w.Close()
	ctx := context.Background()
	stalled, live := w.Watch(ctx), w.Watch(ctx)
	const rounds, perRound = 8, 100 // well past one buffer in all
	for r := range rounds {
		batch := make([]session.Event, perRound)
		for i := range batch {
			batch[i] = numberedEvent(r*perRound + i)
		}
		emitted := make(chan struct{})
		go func() { w.Emit(batch...); close(emitted) }()
		select {
		case <-emitted:
		case <-time.After(watchWait):
			t.Fatalf("round %d: Emit blocked on a watcher that does not read", r)
		}
		for i, ev := range receive(t, live, perRound) {
			if ev != batch[i] {
				t.Fatalf("live watcher: round %d event %d is %+v, want %+v", r, i, ev, batch[i])
			}
		}
	}
	if n := len(stalled); n != cap(stalled) {
		t.Fatalf("stalled watcher holds %d events, want its full buffer of %d", n, cap(stalled))
	}
	for i, ev := range receive(t, stalled, cap(stalled)) {
		if ev != numberedEvent(i) {
			t.Fatalf("stalled watcher: event %d is %+v, want the earliest ones", i, ev)
		}
	}
	stillOpen(t, stalled)
}

func TestCancelledContextEndsOnlyItsWatch(t *testing.T) {
	t.Parallel()
	var w session.Watchers
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ended := w.Watch(ctx)
	other := w.Watch(context.Background())
	cancel()
	waitClosed(t, ended)
	w.Emit(numberedEvent(1))
	if got := receive(t, other, 1)[0]; got != numberedEvent(1) {
		t.Fatalf("other watcher got %+v", got)
	}
}

func TestWatchWithEndedContextIsClosed(t *testing.T) {
	t.Parallel()
	var w session.Watchers
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	waitClosed(t, w.Watch(ctx))
}

func TestCloseEndsEveryWatch(t *testing.T) {
	t.Parallel()
	var w session.Watchers
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := w.Watch(ctx), w.Watch(context.Background())
	w.Emit(numberedEvent(1))
	w.Close()
	w.Close() // twice is fine
	// Events buffered before Close are still read, then the channel ends.
	if got := receive(t, a, 1)[0]; got != numberedEvent(1) {
		t.Fatalf("got %+v", got)
	}
	waitClosed(t, a)
	waitClosed(t, b)
	waitClosed(t, w.Watch(context.Background()))
	w.Emit(numberedEvent(2)) // reaches no one, and does not panic
	cancel()                 // after Close: the channel is not closed twice
}

// Watchers come and go while events are emitted: no send on a closed
// channel, no close twice (run with -race), and every watcher that stays
// gets every event.
func TestWatchersComeAndGoDuringEmit(t *testing.T) {
	t.Parallel()
	var w session.Watchers
	staying := w.Watch(context.Background())
	const events = 200 // within one buffer: staying is read only at the end
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range events {
			w.Emit(numberedEvent(i))
		}
	}()
	go func() {
		defer wg.Done()
		for range 200 {
			ctx, cancel := context.WithCancel(context.Background())
			ch := w.Watch(ctx)
			cancel()
			for range ch { // until its cancel closes it
			}
		}
	}()
	wg.Wait()
	w.Close()
	for i, ev := range receive(t, staying, events) {
		if ev != numberedEvent(i) {
			t.Fatalf("staying watcher: event %d is %+v", i, ev)
		}
	}
	waitClosed(t, staying)
}
