// Package storetest is the conformance suite for session.Store. Every
// store — memory, the embedded durable store, Redis — runs it from its own
// tests, and a store is done when it passes:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, clock func() time.Time) session.Store {
//			return session.NewMemory(session.WithClock(clock))
//		})
//	}
//
// Subtests run in parallel, and several may share one backend (one Redis
// database, say): each uses its own random virtual proxy prefix and ids,
// so stores need not be emptied between them. The suite closes every store
// it creates; newStore may also register its own cleanup.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/session"
)

// Options adapts the suite to a store.
type Options struct {
	// RealTimeExpiry says the store expires entries by its own wall clock
	// (e.g. Redis key TTLs) rather than by the clock passed to newStore.
	// The Expiry tests then pass time.Now, use timeouts of about a second,
	// and wait for expiry by polling, so they take a few seconds.
	RealTimeExpiry bool
	// SkipExpiry, when not empty, skips the Expiry tests; it is the reason
	// reported by t.Skip.
	SkipExpiry string
}

// Run runs the conformance suite against the stores newStore creates.
// newStore is called once per subtest and must return a store that decides
// expiry by clock where it can (see Options.RealTimeExpiry). At most one
// Options value is used.
func Run(t *testing.T, newStore func(t *testing.T, clock func() time.Time) session.Store, opts ...Options) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s := &suite{newStore: newStore, opts: o}
	s.group(t, "Sessions", sessionTests)
	s.group(t, "Tickets", ticketTests)
	s.group(t, "Secrets", secretTests)
	s.group(t, "Watch", watchTests)
	s.group(t, "Concurrency", concurrencyTests)
	t.Run("Expiry", func(t *testing.T) {
		if o.SkipExpiry != "" {
			t.Skip(o.SkipExpiry)
		}
		s.group(t, "", expiryTests)
	})
}

type suite struct {
	newStore func(t *testing.T, clock func() time.Time) session.Store
	opts     Options
}

type test struct {
	name string
	run  func(t *testing.T, e *env)
}

// group runs tests in parallel; it returns when all have finished.
func (s *suite) group(t *testing.T, name string, tests []test) {
	run := func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, s.env(t))
			})
		}
	}
	if name == "" {
		run(t)
		return
	}
	t.Run(name, run)
}

// env is what one subtest works with: a fresh store, its clock and a
// virtual proxy prefix no other subtest uses.
type env struct {
	t      *testing.T
	ctx    context.Context
	store  session.Store
	clock  *Clock // nil when the store expires by real time
	prefix string
}

func (s *suite) env(t *testing.T) *env {
	e := &env{t: t, ctx: t.Context(), prefix: "vp" + session.NewID()[:12]}
	now := time.Now
	if !s.opts.RealTimeExpiry {
		// Whole seconds near the real time: stores that keep their own
		// TTLs or coarser timestamps still see plausible values.
		e.clock = NewClock(time.Now().Truncate(time.Second))
		now = e.clock.Now
	}
	e.store = s.newStore(t, now)
	t.Cleanup(func() {
		if err := e.store.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func (e *env) now() time.Time {
	if e.clock != nil {
		return e.clock.Now()
	}
	return time.Now()
}

// realTime reports whether the store expires by the wall clock.
func (e *env) realTime() bool { return e.clock == nil }

// pass lets d go by: the fake clock moves at once; in real time the test
// sleeps. Sleeping here makes time pass, it does not wait for an event.
func (e *env) pass(d time.Duration) {
	if e.clock != nil {
		e.clock.Advance(d)
		return
	}
	time.Sleep(d)
}

// realTimeGrace is how late a real-time store may expire an entry: its
// TTL may start a little after the LastUsed the test gave it.
const realTimeGrace = time.Second

// expireWithin lets d pass and then requires gone(). In real time it
// polls gone() until d plus a grace period has passed.
func (e *env) expireWithin(d time.Duration, what string, gone func() bool) {
	e.t.Helper()
	if e.clock != nil {
		e.clock.Advance(d)
		if !gone() {
			e.t.Fatalf("%s: still there after %s", what, d)
		}
		return
	}
	deadline := time.Now().Add(d + realTimeGrace)
	for !gone() {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: still there after %s", what, d+realTimeGrace)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// session returns a new session of user in the env's virtual proxy.
// Times are whole milliseconds, which every store can keep exactly.
func (e *env) session(user string, timeout time.Duration) session.Session {
	now := e.now().Truncate(time.Millisecond)
	return session.Session{
		Prefix: e.prefix, ID: session.NewID(), UserDirectory: "DOMAIN", UserID: user,
		Attributes: []session.Attribute{{Key: "Group", Value: "Sales"}},
		Created:    now, LastUsed: now, Timeout: timeout,
	}
}

func (e *env) add(s session.Session) session.Session {
	e.t.Helper()
	if err := e.store.Add(e.ctx, s); err != nil {
		e.t.Fatalf("Add %s: %v", s.ID, err)
	}
	return s
}

func (e *env) get(prefix, id string) session.Session {
	e.t.Helper()
	s, err := e.store.Get(e.ctx, prefix, id)
	if err != nil {
		e.t.Fatalf("Get %q %s: %v", prefix, id, err)
	}
	return s
}

// absent reports whether Get finds no session, failing on other errors.
func (e *env) absent(prefix, id string) bool {
	e.t.Helper()
	_, err := e.store.Get(e.ctx, prefix, id)
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		e.t.Fatalf("Get %q %s: %v", prefix, id, err)
	}
	return err != nil
}

// wantCount checks Count for stores that implement session.Counter.
func (e *env) wantCount(prefix string, want int) {
	e.t.Helper()
	c, ok := e.store.(session.Counter)
	if !ok {
		return
	}
	if n, err := c.Count(e.ctx, prefix); err != nil || n != want {
		e.t.Fatalf("Count %q: %d, %v; want %d", prefix, n, err, want)
	}
}

func (e *env) wantAbsent(prefix, id string) {
	e.t.Helper()
	if !e.absent(prefix, id) {
		e.t.Fatalf("Get %q %s: found, want ErrNotFound", prefix, id)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

// wantSession compares every field; times with Equal, since a store may
// return them in another location or without a monotonic reading.
func wantSession(t *testing.T, got, want session.Session) {
	t.Helper()
	if got.Prefix != want.Prefix || got.ID != want.ID ||
		got.UserDirectory != want.UserDirectory || got.UserID != want.UserID ||
		!slices.Equal(got.Attributes, want.Attributes) || got.Timeout != want.Timeout ||
		!got.Created.Equal(want.Created) || !got.LastUsed.Equal(want.LastUsed) {
		t.Fatalf("session\n got %+v\nwant %+v", got, want)
	}
}

// ids returns the sorted ids of sessions.
func ids(ss []session.Session) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.ID)
	}
	sort.Strings(out)
	return out
}

func sortedIDs(ids ...string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	return out
}

func wantIDs(t *testing.T, what string, got []session.Session, want ...string) {
	t.Helper()
	if g, w := ids(got), sortedIDs(want...); !slices.Equal(g, w) {
		t.Fatalf("%s: ids %v, want %v", what, g, w)
	}
}

var sessionTests = []test{
	{"AddGetRoundTrip", func(t *testing.T, e *env) {
		s := e.session("User1", 30*time.Minute)
		// Order is kept and keys may repeat, as in QPS.
		s.Attributes = []session.Attribute{
			{Key: "Group", Value: "B"}, {Key: "Email", Value: "u1@example.com"}, {Key: "Group", Value: "A"},
		}
		e.add(s)
		wantSession(t, e.get(s.Prefix, s.ID), s)
	}},
	{"AddCopiesAttributes", func(t *testing.T, e *env) {
		s := e.session("User1", 0)
		attrs := []session.Attribute{{Key: "Group", Value: "A"}}
		s.Attributes = attrs
		e.add(s)
		attrs[0].Value = "changed"
		if got := e.get(s.Prefix, s.ID).Attributes; got[0].Value != "A" {
			t.Fatalf("stored attributes changed with the caller's slice: %v", got)
		}
	}},
	{"AddWithoutAttributes", func(t *testing.T, e *env) {
		s := e.session("User1", 0)
		s.Attributes = nil
		e.add(s)
		if got := e.get(s.Prefix, s.ID).Attributes; len(got) != 0 {
			t.Fatalf("attributes %v, want none", got)
		}
	}},
	{"AddDuplicateIsErrExists", func(t *testing.T, e *env) {
		first := e.add(e.session("User1", 30*time.Minute))
		dup := e.session("Intruder", 30*time.Minute)
		dup.ID = first.ID
		wantErr(t, "Add duplicate", e.store.Add(e.ctx, dup), session.ErrExists)
		wantSession(t, e.get(first.Prefix, first.ID), first)
	}},
	{"SameIDInTwoPrefixesAreTwoSessions", func(t *testing.T, e *env) {
		a := e.add(e.session("UserA", 0))
		b := e.session("UserB", 0)
		b.Prefix, b.ID = e.prefix+"-other", a.ID
		e.add(b)
		wantSession(t, e.get(a.Prefix, a.ID), a)
		wantSession(t, e.get(b.Prefix, b.ID), b)
		if _, err := e.store.Delete(e.ctx, a.Prefix, a.ID); err != nil {
			t.Fatal(err)
		}
		wantSession(t, e.get(b.Prefix, b.ID), b)
	}},
	{"DefaultVirtualProxyPrefix", func(t *testing.T, e *env) {
		s := e.session("User1", 0)
		s.Prefix = ""
		e.add(s)
		wantSession(t, e.get("", s.ID), s)
		e.wantAbsent(e.prefix, s.ID)
		if _, err := e.store.Delete(e.ctx, "", s.ID); err != nil {
			t.Fatal(err)
		}
		e.wantAbsent("", s.ID)
	}},
	{"GetUnknownIsErrNotFound", func(t *testing.T, e *env) {
		_, err := e.store.Get(e.ctx, e.prefix, session.NewID())
		wantErr(t, "Get unknown", err, session.ErrNotFound)
	}},
	{"DeleteReturnsTheSession", func(t *testing.T, e *env) {
		s := e.add(e.session("User1", 30*time.Minute))
		got, err := e.store.Delete(e.ctx, s.Prefix, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantSession(t, got, s)
		e.wantAbsent(s.Prefix, s.ID)
		_, err = e.store.Delete(e.ctx, s.Prefix, s.ID)
		wantErr(t, "second Delete", err, session.ErrNotFound)
	}},
	{"DeleteUnknownIsErrNotFound", func(t *testing.T, e *env) {
		_, err := e.store.Delete(e.ctx, e.prefix, session.NewID())
		wantErr(t, "Delete unknown", err, session.ErrNotFound)
	}},
	{"ByUserIsCaseInsensitiveAndScopedByPrefix", func(t *testing.T, e *env) {
		s1 := e.add(e.session("User1", 0))
		s2 := e.session("user1", 0)
		s2.UserDirectory = "domain"
		e.add(s2)
		e.add(e.session("User2", 0))
		elsewhere := e.session("User1", 0)
		elsewhere.Prefix = e.prefix + "-other"
		e.add(elsewhere)

		got, err := e.store.ByUser(e.ctx, e.prefix, "Domain", "USER1")
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "ByUser", got, s1.ID, s2.ID)
		for _, s := range got {
			if s.ID == s1.ID {
				wantSession(t, s, s1)
			}
		}
		none, err := e.store.ByUser(e.ctx, e.prefix, "DOMAIN", "Nobody")
		if err != nil || len(none) != 0 {
			t.Fatalf("ByUser of a user without sessions: %v, %v; want none", none, err)
		}
	}},
	{"DeleteUserRemovesAllAndReturnsThem", func(t *testing.T, e *env) {
		s1 := e.add(e.session("User1", 0))
		s2 := e.add(e.session("USER1", 0))
		other := e.add(e.session("User2", 0))
		elsewhere := e.session("User1", 0)
		elsewhere.Prefix = e.prefix + "-other"
		e.add(elsewhere)

		got, err := e.store.DeleteUser(e.ctx, e.prefix, "domain", "user1")
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "DeleteUser", got, s1.ID, s2.ID)
		e.wantAbsent(s1.Prefix, s1.ID)
		e.wantAbsent(s2.Prefix, s2.ID)
		e.get(other.Prefix, other.ID)
		e.get(elsewhere.Prefix, elsewhere.ID)
		if left, err := e.store.ByUser(e.ctx, e.prefix, "DOMAIN", "User1"); err != nil || len(left) != 0 {
			t.Fatalf("ByUser after DeleteUser: %v, %v; want none", left, err)
		}
		again, err := e.store.DeleteUser(e.ctx, e.prefix, "DOMAIN", "User1")
		if err != nil || len(again) != 0 {
			t.Fatalf("second DeleteUser: %v, %v; want none", again, err)
		}
	}},
	{"ListIsScopedByPrefix", func(t *testing.T, e *env) {
		a := e.add(e.session("User1", 0))
		b := e.add(e.session("User1", 0))
		c := e.add(e.session("User2", 30*time.Minute))
		elsewhere := e.session("User1", 0)
		elsewhere.Prefix = e.prefix + "-other"
		e.add(elsewhere)

		got, err := e.store.List(e.ctx, e.prefix)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "List", got, a.ID, b.ID, c.ID)
		empty, err := e.store.List(e.ctx, e.prefix+"-empty")
		if err != nil || len(empty) != 0 {
			t.Fatalf("List of an empty virtual proxy: %v, %v; want none", empty, err)
		}
		e.wantCount(e.prefix, 3)
		e.wantCount(e.prefix+"-empty", 0)
	}},
	{"TouchDoesNotCreateASession", func(t *testing.T, e *env) {
		id := session.NewID()
		err := e.store.Touch(e.ctx, e.prefix, id, e.now())
		if err != nil && !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Touch unknown: %v, want nil or ErrNotFound", err)
		}
		e.wantAbsent(e.prefix, id)
	}},
}

func (e *env) ticket(user string, ttl time.Duration) session.Ticket {
	return session.Ticket{
		ID: session.NewTicketID(), Prefix: e.prefix, UserDirectory: "DOMAIN", UserID: user,
		Attributes: []session.Attribute{{Key: "Group", Value: "B"}, {Key: "Group", Value: "A"}},
		TargetURI:  "https://proxy.example.com/" + e.prefix + "/hub/?a=1",
		Expires:    e.now().Add(ttl).Truncate(time.Millisecond),
	}
}

func (e *env) putTicket(tk session.Ticket) session.Ticket {
	e.t.Helper()
	if err := e.store.PutTicket(e.ctx, tk); err != nil {
		e.t.Fatalf("PutTicket: %v", err)
	}
	return tk
}

func wantTicket(t *testing.T, got, want session.Ticket) {
	t.Helper()
	if got.ID != want.ID || got.Prefix != want.Prefix || got.UserDirectory != want.UserDirectory ||
		got.UserID != want.UserID || !slices.Equal(got.Attributes, want.Attributes) ||
		got.TargetURI != want.TargetURI || !got.Expires.Equal(want.Expires) {
		t.Fatalf("ticket\n got %+v\nwant %+v", got, want)
	}
}

var ticketTests = []test{
	{"TicketIsSingleUse", func(t *testing.T, e *env) {
		tk := e.putTicket(e.ticket("User1", time.Minute))
		got, err := e.store.TakeTicket(e.ctx, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantTicket(t, got, tk)
		_, err = e.store.TakeTicket(e.ctx, tk.ID)
		wantErr(t, "second TakeTicket", err, session.ErrNotFound)
	}},
	{"TakeUnknownTicketIsErrNotFound", func(t *testing.T, e *env) {
		_, err := e.store.TakeTicket(e.ctx, session.NewTicketID())
		wantErr(t, "TakeTicket unknown", err, session.ErrNotFound)
	}},
	{"ConcurrentTakeTicketHasOneWinner", func(t *testing.T, e *env) {
		tk := e.putTicket(e.ticket("User1", time.Minute))
		const takers = 16
		var (
			start sync.WaitGroup
			wg    sync.WaitGroup
			mu    sync.Mutex
			wins  int
		)
		start.Add(1)
		for range takers {
			wg.Go(func() {
				start.Wait()
				_, err := e.store.TakeTicket(e.ctx, tk.ID)
				switch {
				case err == nil:
					mu.Lock()
					wins++
					mu.Unlock()
				case !errors.Is(err, session.ErrNotFound):
					t.Errorf("TakeTicket: %v", err)
				}
			})
		}
		start.Done()
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d of %d concurrent TakeTicket calls won, want exactly 1", wins, takers)
		}
	}},
}

var secretTests = []test{
	{"SecretIsStableAndRandom", func(t *testing.T, e *env) {
		name := "test-" + e.prefix
		first, err := e.store.Secret(e.ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(first) != session.SecretSize || bytes.Equal(first, make([]byte, session.SecretSize)) {
			t.Fatalf("secret %x: want %d random bytes", first, session.SecretSize)
		}
		again, err := e.store.Secret(e.ctx, name)
		if err != nil || !bytes.Equal(again, first) {
			t.Fatalf("second Secret(%q) = %x, %v; want %x", name, again, err, first)
		}
		other, err := e.store.Secret(e.ctx, name+"-other")
		if err != nil || bytes.Equal(other, first) {
			t.Fatalf("Secret of another name = %x, %v; want another key", other, err)
		}
	}},
	{"ConcurrentFirstSecretsAgree", func(t *testing.T, e *env) {
		name := "test-" + e.prefix
		const callers = 16
		got := make([][]byte, callers)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range callers {
			wg.Go(func() {
				start.Wait()
				k, err := e.store.Secret(e.ctx, name)
				if err != nil {
					t.Errorf("Secret: %v", err)
				}
				got[i] = k
			})
		}
		start.Done()
		wg.Wait()
		for i := range got {
			if !bytes.Equal(got[i], got[0]) {
				t.Fatalf("concurrent first calls disagree: %x and %x", got[0], got[i])
			}
		}
	}},
	{"EmptySecretNameIsAnError", func(t *testing.T, e *env) {
		if k, err := e.store.Secret(e.ctx, ""); err == nil {
			t.Fatalf("Secret(\"\") = %x, want an error", k)
		}
	}},
}

// eventTimeout bounds waiting for a Watch event; shared stores deliver
// them asynchronously.
const eventTimeout = 5 * time.Second

// nextEvent returns the next event about one of ids, skipping events of
// other tests that share the backend.
func nextEvent(t *testing.T, ch <-chan session.Event, ids ...string) session.Event {
	t.Helper()
	timeout := time.After(eventTimeout)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("Watch channel closed, want an event")
			}
			if slices.Contains(ids, ev.ID) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event for %v within %s", ids, eventTimeout)
		}
	}
}

func wantEvent(t *testing.T, got session.Event, kind session.EventKind, s session.Session) {
	t.Helper()
	want := session.Event{Kind: kind, Prefix: s.Prefix, ID: s.ID, UserDirectory: s.UserDirectory, UserID: s.UserID}
	if got != want {
		t.Fatalf("event %+v, want %+v", got, want)
	}
}

// wantClosed waits for ch to be closed, draining events of other tests.
func wantClosed(t *testing.T, ch <-chan session.Event) {
	t.Helper()
	timeout := time.After(eventTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("Watch channel still open after %s", eventTimeout)
		}
	}
}

var watchTests = []test{
	{"WatchSeesDelete", func(t *testing.T, e *env) {
		ch := e.store.Watch(e.ctx)
		s := e.add(e.session("User1", 0))
		if _, err := e.store.Delete(e.ctx, s.Prefix, s.ID); err != nil {
			t.Fatal(err)
		}
		wantEvent(t, nextEvent(t, ch, s.ID), session.Deleted, s)
	}},
	{"WatchSeesLoggedOutForEachSession", func(t *testing.T, e *env) {
		ch := e.store.Watch(e.ctx)
		s1 := e.add(e.session("User1", 0))
		s2 := e.add(e.session("User1", 0))
		if _, err := e.store.DeleteUser(e.ctx, e.prefix, "DOMAIN", "User1"); err != nil {
			t.Fatal(err)
		}
		want := map[string]session.Session{s1.ID: s1, s2.ID: s2}
		for range 2 {
			ev := nextEvent(t, ch, s1.ID, s2.ID)
			s, ok := want[ev.ID]
			if !ok {
				t.Fatalf("second event for %s", ev.ID)
			}
			wantEvent(t, ev, session.LoggedOut, s)
			delete(want, ev.ID)
		}
	}},
	{"WatchFansOutToEveryWatcher", func(t *testing.T, e *env) {
		a, b := e.store.Watch(e.ctx), e.store.Watch(e.ctx)
		s := e.add(e.session("User1", 0))
		if _, err := e.store.Delete(e.ctx, s.Prefix, s.ID); err != nil {
			t.Fatal(err)
		}
		wantEvent(t, nextEvent(t, a, s.ID), session.Deleted, s)
		wantEvent(t, nextEvent(t, b, s.ID), session.Deleted, s)
	}},
	{"WatchEndsWithContext", func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(e.ctx)
		ch := e.store.Watch(ctx)
		other := e.store.Watch(e.ctx)
		cancel()
		wantClosed(t, ch)
		// The store and its other watchers carry on.
		s := e.add(e.session("User1", 0))
		if _, err := e.store.Delete(e.ctx, s.Prefix, s.ID); err != nil {
			t.Fatal(err)
		}
		wantEvent(t, nextEvent(t, other, s.ID), session.Deleted, s)
	}},
	{"WatchEndsWithClose", func(t *testing.T, e *env) {
		ch := e.store.Watch(e.ctx)
		if err := e.store.Close(); err != nil {
			t.Fatal(err)
		}
		wantClosed(t, ch)
	}},
}

var concurrencyTests = []test{
	{"ParallelAddGetTouchDelete", func(t *testing.T, e *env) {
		// Few ids, many goroutines: every operation meets the others on
		// the same sessions. Only the documented sentinels may come back.
		const (
			workers = 16
			rounds  = 300
			idCount = 32
		)
		idList := make([]string, idCount)
		for i := range idList {
			idList[i] = session.NewID()
		}
		users := []string{"User1", "User2", "User3"}
		watch := e.store.Watch(e.ctx)
		var wg sync.WaitGroup
		wg.Go(func() { // a slow watcher must not stall the store
			for range watch {
				time.Sleep(time.Millisecond)
			}
		})
		var workersDone sync.WaitGroup
		for w := range workers {
			workersDone.Go(func() {
				for i := range rounds {
					id := idList[(w*7+i*13)%idCount]
					user := users[(w+i)%len(users)]
					if err := concurrentOp(e, (w+i)%7, id, user); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		workersDone.Wait()
		// Closing the store ends the watcher goroutine.
		if err := e.store.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}},
}

// concurrentOp runs one operation of the concurrency test and reports
// anything but success or the operation's sentinel error.
func concurrentOp(e *env, op int, id, user string) error {
	ctx := e.ctx
	expect := func(what string, err, sentinel error) error {
		if err == nil || errors.Is(err, sentinel) {
			return nil
		}
		return fmt.Errorf("%s %s: %w", what, id[:8], err)
	}
	switch op {
	case 0:
		s := e.session(user, time.Hour)
		s.ID = id
		return expect("Add", e.store.Add(ctx, s), session.ErrExists)
	case 1:
		s, err := e.store.Get(ctx, e.prefix, id)
		if err == nil && (s.ID != id || s.Prefix != e.prefix || len(s.Attributes) != 1) {
			return fmt.Errorf("session %s read back as %+v", id[:8], s)
		}
		return expect("Get", err, session.ErrNotFound)
	case 2:
		return expect("Touch", e.store.Touch(ctx, e.prefix, id, e.now()), session.ErrNotFound)
	case 3:
		_, err := e.store.Delete(ctx, e.prefix, id)
		return expect("Delete", err, session.ErrNotFound)
	case 4:
		ss, err := e.store.ByUser(ctx, e.prefix, "domain", strings.ToLower(user))
		for _, s := range ss {
			if !strings.EqualFold(s.UserID, user) {
				return fmt.Errorf("sessions of %s include one of %s", user, s.UserID)
			}
		}
		return expect("ByUser", err, nil)
	case 5:
		_, err := e.store.List(ctx, e.prefix)
		return expect("List", err, nil)
	default:
		_, err := e.store.DeleteUser(ctx, e.prefix, "DOMAIN", user)
		return expect("DeleteUser", err, nil)
	}
}

// expiryTests run against the fake clock, or in real time with short
// timeouts when Options.RealTimeExpiry is set.
var expiryTests = []test{
	{"TouchSlidesExpiry", func(t *testing.T, e *env) {
		// Fake clock: timeout 10m; touched after 9m, so still there 9m
		// later (18m after creation) and gone 11m after the touch.
		timeout, beforeTouch, afterTouch := 10*time.Minute, 9*time.Minute, 9*time.Minute
		if e.realTime() {
			// Margins of a second and more: a loaded CI machine may stall
			// the test for hundreds of milliseconds between two steps.
			timeout, beforeTouch, afterTouch = 3*time.Second, time.Second, 1500*time.Millisecond
		}
		s := e.add(e.session("User1", timeout))
		e.pass(beforeTouch)
		if err := e.store.Touch(e.ctx, s.Prefix, s.ID, e.now()); err != nil {
			t.Fatalf("Touch: %v", err)
		}
		e.pass(afterTouch)
		if e.absent(s.Prefix, s.ID) {
			t.Fatalf("session gone %s after a Touch, with timeout %s", afterTouch, timeout)
		}
		e.expireWithin(timeout-afterTouch+timeout/10, "session after its timeout since the last Touch", func() bool {
			return e.absent(s.Prefix, s.ID)
		})
	}},
	{"GetIsNotUse", func(t *testing.T, e *env) {
		timeout := e.expiryTimeout()
		s := e.add(e.session("User1", timeout))
		e.pass(timeout * 6 / 10)
		e.get(s.Prefix, s.ID)
		e.expireWithin(timeout*4/10, "session read by Get but not touched", func() bool {
			return e.absent(s.Prefix, s.ID)
		})
	}},
	{"SessionExpiresAtItsTimeout", func(t *testing.T, e *env) {
		if e.realTime() {
			t.Skip("the exact instant is a matter of the fake clock")
		}
		s := e.add(e.session("User1", 10*time.Minute))
		e.pass(10*time.Minute - time.Second)
		e.get(s.Prefix, s.ID)
		e.pass(time.Second)
		e.wantAbsent(s.Prefix, s.ID)
	}},
	{"ExpiredSessionIsAbsentEverywhere", func(t *testing.T, e *env) {
		timeout := e.expiryTimeout()
		s := e.add(e.session("User1", timeout))
		kept := e.add(e.session("User1", 0))
		e.expireWithin(timeout, "session after its timeout", func() bool {
			return e.absent(s.Prefix, s.ID)
		})
		byUser, err := e.store.ByUser(e.ctx, e.prefix, "DOMAIN", "User1")
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "ByUser", byUser, kept.ID)
		list, err := e.store.List(e.ctx, e.prefix)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "List", list, kept.ID)
		e.wantCount(e.prefix, 1)
		_, err = e.store.Delete(e.ctx, s.Prefix, s.ID)
		wantErr(t, "Delete expired", err, session.ErrNotFound)
		if err := e.store.Touch(e.ctx, s.Prefix, s.ID, e.now()); err != nil && !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Touch expired: %v, want nil or ErrNotFound", err)
		}
		e.wantAbsent(s.Prefix, s.ID) // a Touch does not revive it
	}},
	{"ExpiredSessionMayBeReplaced", func(t *testing.T, e *env) {
		timeout := e.expiryTimeout()
		old := e.add(e.session("User1", timeout))
		e.expireWithin(timeout, "session after its timeout", func() bool {
			return e.absent(old.Prefix, old.ID)
		})
		s := e.session("User2", timeout)
		s.ID = old.ID
		e.add(s)
		wantSession(t, e.get(s.Prefix, s.ID), s)
	}},
	{"SessionWithoutTimeoutDoesNotExpire", func(t *testing.T, e *env) {
		timeout := e.expiryTimeout()
		forever := e.add(e.session("User1", 0))
		timed := e.add(e.session("User1", timeout))
		e.expireWithin(timeout, "session after its timeout", func() bool {
			return e.absent(timed.Prefix, timed.ID)
		})
		e.pass(timeout) // with the fake clock: long after, too
		e.get(forever.Prefix, forever.ID)
	}},
	{"TicketExpires", func(t *testing.T, e *env) {
		ttl := time.Minute
		if e.realTime() {
			ttl = 300 * time.Millisecond
		}
		early := e.putTicket(e.ticket("User1", ttl))
		late := e.putTicket(e.ticket("User1", ttl))
		if !e.realTime() {
			e.pass(ttl - time.Second)
			if _, err := e.store.TakeTicket(e.ctx, early.ID); err != nil {
				t.Fatalf("TakeTicket a second before expiry: %v", err)
			}
			e.pass(time.Second)
		} else {
			// A ticket cannot be polled without taking it: let its
			// lifetime and the grace period pass, then take it once.
			e.pass(ttl + realTimeGrace)
		}
		_, err := e.store.TakeTicket(e.ctx, late.ID)
		wantErr(t, "TakeTicket after expiry", err, session.ErrNotFound)
	}},
}

// expiryTimeout is a timeout for expiry tests that only need something
// to expire: 10 minutes of fake time or 2 s of real time.
func (e *env) expiryTimeout() time.Duration {
	if e.realTime() {
		return 2 * time.Second
	}
	return 10 * time.Minute
}
