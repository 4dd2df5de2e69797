package session_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/storetest"
)

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, clock func() time.Time) session.Store {
		return session.NewMemory(session.WithClock(clock))
	})
}

// TestMemoryConformanceWithCollisions runs the suite, its concurrent
// tests included, with nearly every hash colliding, attribute lists kept
// in the arena and arenas compacting at every chance.
func TestMemoryConformanceWithCollisions(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, clock func() time.Time) session.Store {
		return session.NewMemory(session.WithClock(clock), session.WithHashMask(0x3),
			session.WithAttributeSetLimit(1), session.WithCompactMin(1))
	})
}

// TestMemoryConformanceRealTime runs the Expiry tests the way a store
// with its own TTLs (Redis) runs them, so that mode of the suite is itself
// known to pass against the reference store.
func TestMemoryConformanceRealTime(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for real expiry")
	}
	storetest.Run(t, func(t *testing.T, clock func() time.Time) session.Store {
		return session.NewMemory(session.WithClock(clock))
	}, storetest.Options{RealTimeExpiry: true})
}

var start = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func newMemory(t *testing.T) (*session.Memory, *storetest.Clock) {
	t.Helper()
	clock := storetest.NewClock(start)
	m := session.NewMemory(session.WithClock(clock.Now))
	t.Cleanup(func() { m.Close() })
	return m, clock
}

func TestSweepRemovesExpiredAndReportsThem(t *testing.T) {
	t.Parallel()
	m, clock := newMemory(t)
	ctx := t.Context()
	short := session.Session{Prefix: "vp", ID: "short-lived-session", UserDirectory: "DOMAIN", UserID: "User1", Timeout: time.Minute}
	long := session.Session{Prefix: "vp", ID: "long-lived-session", UserDirectory: "DOMAIN", UserID: "User1", Timeout: time.Hour}
	for _, s := range []session.Session{short, long} {
		if err := m.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.PutTicket(ctx, session.Ticket{ID: "ticket", Prefix: "vp", Expires: start.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	events := m.Watch(ctx)

	clock.Advance(2 * time.Minute)
	if m.Len() != 2 {
		t.Fatalf("Len before sweep = %d, want 2 (expired but not yet swept)", m.Len())
	}
	m.Sweep(clock.Now())

	if m.Len() != 1 {
		t.Fatalf("Len after sweep = %d, want 1", m.Len())
	}
	select {
	case ev := <-events:
		want := session.Event{Kind: session.Expired, Prefix: "vp", ID: short.ID, UserDirectory: "DOMAIN", UserID: "User1"}
		if ev != want {
			t.Fatalf("event %+v, want %+v", ev, want)
		}
	default:
		t.Fatal("sweep reported no Expired event")
	}
	select {
	case ev := <-events:
		t.Fatalf("unexpected second event %+v", ev)
	default:
	}
	if got, _ := m.ByUser(ctx, "vp", "domain", "user1"); len(got) != 1 || got[0].ID != long.ID {
		t.Fatalf("ByUser after sweep = %+v, want only %s", got, long.ID)
	}
	if _, err := m.TakeTicket(ctx, "ticket"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("TakeTicket of a swept ticket: %v, want ErrNotFound", err)
	}
}

func TestSweepSparesTouchedSession(t *testing.T) {
	t.Parallel()
	m, clock := newMemory(t)
	ctx := t.Context()
	s := session.Session{Prefix: "vp", ID: "touched-session-id", UserID: "u", Timeout: time.Minute}
	if err := m.Add(ctx, s); err != nil {
		t.Fatal(err)
	}
	clock.Advance(50 * time.Second)
	if err := m.Touch(ctx, s.Prefix, s.ID, clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(50 * time.Second)
	m.Sweep(clock.Now())
	if m.Len() != 1 {
		t.Fatal("sweep removed a session touched within its timeout")
	}
}

func TestAddFillsZeroTimesFromTheClock(t *testing.T) {
	t.Parallel()
	m, _ := newMemory(t)
	if err := m.Add(t.Context(), session.Session{Prefix: "vp", ID: "no-times-given"}); err != nil {
		t.Fatal(err)
	}
	got, err := m.Get(t.Context(), "vp", "no-times-given")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(start) || !got.LastUsed.Equal(start) {
		t.Fatalf("Created %v, LastUsed %v; want both %v", got.Created, got.LastUsed, start)
	}
}

func TestTouchMovesLastUsedOnlyForward(t *testing.T) {
	t.Parallel()
	m, clock := newMemory(t)
	ctx := t.Context()
	if err := m.Add(ctx, session.Session{Prefix: "vp", ID: "session-id", Created: start, LastUsed: start, Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	later := clock.Now()
	for _, at := range []time.Time{later, start} { // a late, older Touch must not undo a newer one
		if err := m.Touch(ctx, "vp", "session-id", at); err != nil {
			t.Fatal(err)
		}
	}
	got, err := m.Get(ctx, "vp", "session-id")
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastUsed.Equal(later) || got.LastUsed.Location() != time.UTC {
		t.Fatalf("LastUsed %v, want %v in UTC", got.LastUsed, later)
	}
}

func TestReplacingExpiredSessionReportsIt(t *testing.T) {
	t.Parallel()
	m, clock := newMemory(t)
	ctx := t.Context()
	old := session.Session{Prefix: "vp", ID: "reused-id", UserDirectory: "D", UserID: "Old", Timeout: time.Minute}
	if err := m.Add(ctx, old); err != nil {
		t.Fatal(err)
	}
	events := m.Watch(ctx)
	clock.Advance(time.Minute)
	if err := m.Add(ctx, session.Session{Prefix: "vp", ID: "reused-id", UserDirectory: "D", UserID: "New"}); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Kind != session.Expired || ev.UserID != "Old" {
		t.Fatalf("event %+v, want Expired of the old session", ev)
	}
	if got, _ := m.ByUser(ctx, "vp", "D", "Old"); len(got) != 0 {
		t.Fatalf("ByUser of the replaced user = %+v, want none", got)
	}
}

func TestPutWithoutExpiresIsAnError(t *testing.T) {
	t.Parallel()
	m, _ := newMemory(t)
	if err := m.PutTicket(t.Context(), session.Ticket{ID: "t"}); err == nil {
		t.Error("PutTicket without Expires succeeded")
	}
}

func TestFullWatcherDoesNotBlockTheStore(t *testing.T) {
	t.Parallel()
	m, _ := newMemory(t)
	ctx := t.Context()
	events := m.Watch(ctx) // never read until the end
	const n = 1000         // well past the watcher's buffer
	for i := range n {
		id := session.NewID()
		if err := m.Add(ctx, session.Session{Prefix: "vp", ID: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Delete(ctx, "vp", id); err != nil {
			t.Fatalf("Delete %d: %v", i, err)
		}
	}
	m.Close()
	got := 0
	for range events {
		got++
	}
	if got == 0 || got >= n {
		t.Fatalf("watcher received %d of %d events, want a full buffer's worth", got, n)
	}
}

func TestWatchAfterCloseIsClosed(t *testing.T) {
	t.Parallel()
	m, _ := newMemory(t)
	m.Close()
	if _, ok := <-m.Watch(context.Background()); ok {
		t.Fatal("Watch after Close delivered an event")
	}
}

func TestResultsAreOldestFirst(t *testing.T) {
	t.Parallel()
	m, _ := newMemory(t)
	ctx := t.Context()
	var want []string
	for i := range 20 {
		id := session.NewID()
		want = append(want, id)
		s := session.Session{Prefix: "vp", ID: id, UserID: "u", Created: start.Add(time.Duration(i) * time.Second)}
		if err := m.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	list, _ := m.List(ctx, "vp")
	byUser, _ := m.ByUser(ctx, "vp", "", "U")
	for name, got := range map[string][]session.Session{"List": list, "ByUser": byUser} {
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("%s order %v, want %v", name, ids, want)
		}
	}
}

// TestSweepDuringUse runs the sweeper against concurrent use; it has
// value under -race.
func TestSweepDuringUse(t *testing.T) {
	t.Parallel()
	m, clock := newMemory(t)
	ctx := t.Context()
	ids := make([]string, 64)
	for i := range ids {
		ids[i] = session.NewID()
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				id := ids[(w*31+i)%len(ids)]
				switch i % 4 {
				case 0:
					m.Add(ctx, session.Session{Prefix: "vp", ID: id, UserID: "u", Timeout: time.Second, LastUsed: clock.Now()})
				case 1:
					m.Touch(ctx, "vp", id, clock.Now())
				case 2:
					m.Get(ctx, "vp", id)
				case 3:
					m.ByUser(ctx, "vp", "", "u")
				}
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			clock.Advance(100 * time.Millisecond)
			m.Sweep(clock.Now())
		}
	})
	wg.Wait()
}

// TestRequestPathAllocations pins the request path's budget: a lookup hit
// copies the user out of the store in one allocation; a touch costs none.
func TestRequestPathAllocations(t *testing.T) {
	m, clock := newMemory(t)
	ctx := context.Background()
	s := session.Session{Prefix: "vp", ID: session.NewID(), UserDirectory: "CORP", UserID: "u", Attributes: []session.Attribute{{Key: "Group", Value: "A"}}, Timeout: time.Hour}
	if err := m.Add(ctx, s); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := m.Get(ctx, s.Prefix, s.ID); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 1 {
		t.Errorf("Get allocates %.1f times per call, want 1", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		if err := m.Touch(ctx, s.Prefix, s.ID, now); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Touch allocates %.1f times per call, want 0", allocs)
	}
}
