package session_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/storetest"
)

// recordingJournal records what a Memory store reports, and fails the
// commits of changes whose id is in fail.
type recordingJournal struct {
	mu   sync.Mutex
	log  []string
	fail map[string]bool
}

func (j *recordingJournal) record(entry, id string) session.Commit {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.log = append(j.log, entry)
	if j.fail[id] {
		return func() error { return fmt.Errorf("disk full: %w", session.ErrUnavailable) }
	}
	return func() error { return nil }
}

func (j *recordingJournal) entries() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.log)
}

func (j *recordingJournal) SessionAdded(s session.Session) session.Commit {
	return j.record("add "+s.ID, s.ID)
}
func (j *recordingJournal) SessionRemoved(_, id string) session.Commit {
	return j.record("remove "+id, id)
}
func (j *recordingJournal) SessionUsed(_, id string, _, at time.Time) {
	j.record("use "+id+" "+at.Format("15:04:05"), id)
}
func (j *recordingJournal) TicketPut(t session.Ticket) session.Commit {
	return j.record("ticket "+t.ID, t.ID)
}
func (j *recordingJournal) TicketTaken(id string) session.Commit { return j.record("take "+id, id) }

func TestJournalSeesEveryChange(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	j := &recordingJournal{}
	m := session.NewMemory(session.WithClock(clock.Now), session.WithJournal(j, 10*time.Second))
	defer m.Close()

	add := func(id, user string) {
		err := m.Add(ctx, session.Session{Prefix: "vp", ID: id, UserDirectory: "D", UserID: user, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
	}
	add("s1", "U1")
	add("s2", "U2")
	add("s3", "U2")
	// Only a touch that enters a new 10 s interval is reported.
	for _, d := range []time.Duration{2 * time.Second, 3 * time.Second, 11 * time.Second} {
		if err := m.Touch(ctx, "vp", "s1", clock.Now().Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Delete(ctx, "vp", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DeleteUser(ctx, "vp", "D", "U2"); err != nil {
		t.Fatal(err)
	}
	add("s4", "U4")
	clock.Advance(2 * time.Minute)
	m.Sweep(clock.Now())
	if err := m.PutTicket(ctx, session.Ticket{ID: "t1", Expires: clock.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.TakeTicket(ctx, "t1"); err != nil {
		t.Fatal(err)
	}

	got := j.entries()
	want := []string{"add s1", "add s2", "add s3", "use s1 12:00:11", "remove s1"}
	if !slices.Equal(got[:len(want)], want) {
		t.Fatalf("journal starts %q, want %q", got[:len(want)], want)
	}
	rest := got[len(want):]
	if len(rest) != 6 || !slices.Contains(rest[:2], "remove s2") || !slices.Contains(rest[:2], "remove s3") ||
		!slices.Equal(rest[2:], []string{"add s4", "remove s4", "ticket t1", "take t1"}) {
		t.Fatalf("journal goes on %q", rest)
	}
}

func TestFailedCommitIsNotKept(t *testing.T) {
	ctx := context.Background()
	j := &recordingJournal{fail: map[string]bool{"bad": true, "badticket": true}}
	m := session.NewMemory(session.WithJournal(j, 0))
	defer m.Close()
	err := m.Add(ctx, session.Session{Prefix: "vp", ID: "bad", UserID: "U1"})
	if !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Add with a failing journal: %v, want ErrUnavailable", err)
	}
	if _, err := m.Get(ctx, "vp", "bad"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("session whose add failed: %v, want ErrNotFound", err)
	}
	if list, _ := m.ByUser(ctx, "vp", "", "U1"); len(list) != 0 || m.Len() != 0 {
		t.Fatalf("session whose add failed is still indexed: %v, Len %d", list, m.Len())
	}
	err = m.PutTicket(ctx, session.Ticket{ID: "badticket", Expires: time.Now().Add(time.Minute)})
	if !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("PutTicket with a failing journal: %v", err)
	}
	if _, err := m.TakeTicket(ctx, "badticket"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("ticket whose put failed: %v, want ErrNotFound", err)
	}
}

func TestMaxSessionsIsErrFull(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	m := session.NewMemory(session.WithClock(clock.Now), session.WithMaxSessions(2))
	defer m.Close()
	add := func(id string, timeout time.Duration) error {
		return m.Add(ctx, session.Session{Prefix: "vp", ID: id, UserID: "U", Timeout: timeout})
	}
	if err := errors.Join(add("a", time.Minute), add("b", 0)); err != nil {
		t.Fatal(err)
	}
	if err := add("c", 0); !errors.Is(err, session.ErrFull) {
		t.Fatalf("third Add with a cap of 2: %v, want ErrFull", err)
	}
	// An expired session may be replaced at the cap: it does not add one.
	clock.Advance(2 * time.Minute)
	if err := add("a", 0); err != nil {
		t.Fatalf("replacing an expired session at the cap: %v", err)
	}
	if _, err := m.Delete(ctx, "vp", "b"); err != nil {
		t.Fatal(err)
	}
	if err := add("c", 0); err != nil {
		t.Fatalf("Add after a Delete made room: %v", err)
	}
	if m.Len() != 2 {
		t.Fatalf("Len %d, want 2", m.Len())
	}
}

func TestMaxSessionsHoldsUnderConcurrentAdds(t *testing.T) {
	ctx := context.Background()
	m := session.NewMemory(session.WithMaxSessions(10))
	defer m.Close()
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() { m.Add(ctx, session.Session{Prefix: "vp", ID: session.NewID(), UserID: "U"}) })
	}
	wg.Wait()
	if list, _ := m.List(ctx, "vp"); len(list) != 10 || m.Len() != 10 {
		t.Fatalf("%d sessions (Len %d) after 100 concurrent adds with a cap of 10", len(list), m.Len())
	}
}
