package redis_test

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/redis"
	"github.com/openqps/openqps/internal/session/redis/redistest"
	"github.com/openqps/openqps/internal/session/storetest"
)

func open(t testing.TB, addr string, o redis.Options) *redis.Store {
	t.Helper()
	o.Addresses = []string{addr}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "openqps-test:"
	}
	s, err := redis.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T, clock func() time.Time) session.Store {
		return open(t, srv.Addr, redis.Options{Now: clock, SweepInterval: 100 * time.Millisecond})
	}, storetest.Options{RealTimeExpiry: true})
}

func testSession(user string, timeout time.Duration) session.Session {
	now := time.Now().Truncate(time.Millisecond)
	return session.Session{
		Prefix: "sales", ID: session.NewID(), UserDirectory: "DOMAIN", UserID: user,
		Attributes: []session.Attribute{{Key: "Group", Value: "A"}},
		Created:    now, LastUsed: now, Timeout: timeout,
	}
}

// waitFor polls cond until it holds, failing after d.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDeleteOnOneNodeIsSeenOnTheOther(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	a, b := open(t, srv.Addr, redis.Options{}), open(t, srv.Addr, redis.Options{})
	events := b.Watch(ctx)
	s := testSession("User1", time.Hour)
	if err := a.Add(ctx, s); err != nil {
		t.Fatal(err)
	}
	// B reads it twice: the second read is served from B's cache.
	for range 2 {
		if _, err := b.Get(ctx, s.Prefix, s.ID); err != nil {
			t.Fatalf("session added on A, read on B: %v", err)
		}
	}
	start := time.Now()
	if _, err := a.Delete(ctx, s.Prefix, s.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delete on A seen by Get on B", 100*time.Millisecond, func() bool {
		_, err := b.Get(ctx, s.Prefix, s.ID)
		return errors.Is(err, session.ErrNotFound)
	})
	seen := time.Since(start)
	select {
	case ev := <-events:
		if ev.Kind != session.Deleted || ev.ID != s.ID || ev.UserID != "User1" {
			t.Fatalf("B's watcher got %+v", ev)
		}
	case <-time.After(time.Second):
		t.Fatal("B's watcher got no event within 1 s of the delete on A")
	}
	t.Logf("delete on A seen on B after %s", seen)
}

func TestAddOnOneNodeIsFoundAtOnceOnTheOther(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	a, b := open(t, srv.Addr, redis.Options{}), open(t, srv.Addr, redis.Options{})
	s := testSession("User1", time.Hour)
	// B caches "absent" first, as it does for an unknown cookie.
	if _, err := b.Get(ctx, s.Prefix, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatal(err)
	}
	if err := a.Add(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, s.Prefix, s.ID); err != nil {
		t.Fatalf("Get on B right after the add on A was acknowledged: %v", err)
	}
}

func TestTicketIsRedeemedOnceAcrossNodes(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	a, b := open(t, srv.Addr, redis.Options{}), open(t, srv.Addr, redis.Options{})
	tk := session.Ticket{ID: session.NewTicketID(), Prefix: "sales", UserID: "User1", Expires: time.Now().Add(time.Minute)}
	if err := a.PutTicket(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if _, err := b.TakeTicket(ctx, tk.ID); err != nil {
		t.Fatalf("ticket put on A, taken on B: %v", err)
	}
	if _, err := a.TakeTicket(ctx, tk.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("second take on A: %v, want ErrNotFound", err)
	}
}

func TestTouchWritesCoarsely(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	a, b := open(t, srv.Addr, redis.Options{UseGranularity: time.Minute}), open(t, srv.Addr, redis.Options{})
	s := testSession("User1", time.Hour) // granularity: min(1m, 6m) = 1m
	if err := a.Add(ctx, s); err != nil {
		t.Fatal(err)
	}
	lastUsed := func() time.Time {
		got, err := b.Get(ctx, s.Prefix, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.LastUsed
	}
	if err := a.Touch(ctx, s.Prefix, s.ID, s.LastUsed.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(s.LastUsed) {
		t.Fatalf("a use 30 s later was written (LastUsed %v); want writes only a granularity (1m) apart", got)
	}
	later := s.LastUsed.Add(61 * time.Second)
	if err := a.Touch(ctx, s.Prefix, s.ID, later); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a use 61 s later written and seen on B", time.Second, func() bool { return lastUsed().Equal(later) })
}

func TestExpiredSessionIsAnnounced(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	a := open(t, srv.Addr, redis.Options{SweepInterval: 50 * time.Millisecond})
	b := open(t, srv.Addr, redis.Options{SweepInterval: 50 * time.Millisecond})
	events := a.Watch(ctx)
	other := b.Watch(ctx)
	s := testSession("User1", 200*time.Millisecond)
	if err := a.Add(ctx, s); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan session.Event{"A": events, "B": other} {
		select {
		case ev := <-ch:
			if ev.Kind != session.Expired || ev.ID != s.ID || ev.UserID != s.UserID {
				t.Fatalf("%s's watcher got %+v, want Expired of the session", name, ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s's watcher: no Expired event within 5 s", name)
		}
	}
	// Two nodes swept: the expiry is still announced once.
	select {
	case ev := <-events:
		t.Fatalf("second event %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestOutageIsUnavailableAndRecovers(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	s := open(t, srv.Addr, redis.Options{Timeout: 500 * time.Millisecond})
	events := s.Watch(ctx)
	sess := testSession("User1", time.Hour)
	if err := s.Add(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, sess.Prefix, sess.ID); err != nil { // now cached
		t.Fatal(err)
	}

	srv.Stop()
	// A cached session may be served until the client has noticed the
	// lost connection (at once for a closed one, within Timeout for a
	// silent one): no delete can happen meanwhile, as that needs Redis.
	waitFor(t, "Get fails once the connection is lost", 5*time.Second, func() bool {
		_, err := s.Get(ctx, sess.Prefix, sess.ID)
		return errors.Is(err, session.ErrUnavailable)
	})
	for name, err := range map[string]error{
		"Get":  second(s.Get(ctx, sess.Prefix, sess.ID)),
		"Add":  s.Add(ctx, testSession("User2", time.Hour)),
		"Ping": s.Ping(ctx),
	} {
		if !errors.Is(err, session.ErrUnavailable) {
			t.Fatalf("%s while redis is down: %v, want ErrUnavailable", name, err)
		}
	}

	srv.Restart() // empty: what was stored is gone
	// The first calls may still meet connections that died with the old
	// server; the store must come back by itself, without reopening.
	waitFor(t, "Add works again after redis came back", 10*time.Second, func() bool {
		return s.Add(ctx, testSession("User3", time.Hour)) == nil
	})
	if _, err := s.Get(ctx, sess.Prefix, sess.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("session lost with redis's memory: %v, want ErrNotFound (not a stale cached copy)", err)
	}
	// The subscription is back too: a delete reaches the watcher.
	var ev session.Event
	waitFor(t, "watch events after redis came back", 10*time.Second, func() bool {
		again := testSession("User4", time.Hour)
		if s.Add(ctx, again) != nil {
			return false
		}
		s.Delete(ctx, again.Prefix, again.ID)
		select {
		case ev = <-events:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	if ev.Kind != session.Deleted {
		t.Fatalf("event %+v", ev)
	}
}

func second[T any](_ T, err error) error { return err }

func TestMaxSessionsIsSharedByTheNodes(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	a, b := open(t, srv.Addr, redis.Options{MaxSessions: 2}), open(t, srv.Addr, redis.Options{MaxSessions: 2})
	first := testSession("User1", time.Hour)
	if err := errors.Join(a.Add(ctx, first), b.Add(ctx, testSession("User2", time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, testSession("User3", time.Hour)); !errors.Is(err, session.ErrFull) {
		t.Fatalf("third session across two nodes with a cap of 2: %v, want ErrFull", err)
	}
	if _, err := b.Delete(ctx, first.Prefix, first.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, testSession("User3", time.Hour)); err != nil {
		t.Fatalf("Add after a delete made room: %v", err)
	}
}

func TestConformanceCluster(t *testing.T) {
	addrs := redistest.StartCluster(t)
	storetest.Run(t, func(t *testing.T, clock func() time.Time) session.Store {
		s, err := redis.Open(redis.Options{Addresses: addrs, KeyPrefix: "openqps-test:", Now: clock, SweepInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}, storetest.Options{RealTimeExpiry: true})
}

func TestSentinel(t *testing.T) {
	ctx := t.Context()
	sentinel := redistest.StartSentinel(t, "openqps-master")
	s, err := redis.Open(redis.Options{Addresses: []string{sentinel}, SentinelMaster: "openqps-master", KeyPrefix: "openqps-test:"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sess := testSession("User1", time.Hour)
	if err := s.Add(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, sess.Prefix, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, sess.Prefix, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, sess.Prefix, sess.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after Delete through sentinel: %v", err)
	}
}

// TestAddThatCannotIndexLeavesNothing: when Redis stores a session but
// refuses to index it, Add answers unavailable and takes the session
// back, so that the caller's retry with the same SessionId succeeds
// instead of being refused as existing.
func TestAddThatCannotIndexLeavesNothing(t *testing.T) {
	srv := redistest.Start(t)
	admin, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	acl := func(rules ...string) {
		t.Helper()
		cmd := append([]string{"ACL", "SETUSER", "openqps", "on", ">secret", "~*", "&*", "+@all"}, rules...)
		if err := admin.Do(t.Context(), admin.B().Arbitrary(cmd...).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	acl("-zadd") // the add script runs, the index commands are refused
	s := open(t, srv.Addr, redis.Options{Username: "openqps", Password: "secret"})
	sess := testSession("User1", time.Hour)

	if err := s.Add(t.Context(), sess); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Add whose indexing fails = %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(t.Context(), sess.Prefix, sess.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("after the failed Add, Get = %v, want ErrNotFound (the session taken back)", err)
	}
	acl("+zadd")
	if err := s.Add(t.Context(), sess); err != nil {
		t.Fatalf("retrying the Add with the same SessionId: %v", err)
	}
	if got, err := s.ByUser(t.Context(), sess.Prefix, sess.UserDirectory, sess.UserID); err != nil || len(got) != 1 {
		t.Fatalf("ByUser after the retry = %d sessions, %v; want the one", len(got), err)
	}
}

func TestNodesAgreeOnSecrets(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr, redis.Options{})
	b := open(t, srv.Addr, redis.Options{})
	name := "agree-" + session.NewID()
	var wg sync.WaitGroup
	var ka, kb []byte
	var ea, eb error
	wg.Go(func() { ka, ea = a.Secret(t.Context(), name) })
	wg.Go(func() { kb, eb = b.Secret(t.Context(), name) })
	wg.Wait()
	if ea != nil || eb != nil || !bytes.Equal(ka, kb) || len(ka) != session.SecretSize {
		t.Fatalf("node A: %x, %v; node B: %x, %v; want one key of %d bytes", ka, ea, kb, eb, session.SecretSize)
	}
	c := open(t, srv.Addr, redis.Options{}) // a node that starts later
	if kc, err := c.Secret(t.Context(), name); err != nil || !bytes.Equal(kc, ka) {
		t.Fatalf("later node: %x, %v; want %x", kc, err, ka)
	}
}

// TestHungRedisStopsTrustingTheCache: when Redis stops answering without
// closing the connection (a hung server, a partition), the invalidations
// that keep the client-side cache honest stop too, so the node would
// miss deletes made through other nodes. A session read before must stop
// being served from the cache, and a lookup must fail with
// ErrUnavailable, within the documented bound: about the timeout. The
// assertion leaves room for a loaded CI machine; the figures are logged.
func TestHungRedisStopsTrustingTheCache(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	s := open(t, srv.Addr, redis.Options{}) // the default timeout, which the README states
	sess := testSession("User1", time.Hour)
	if err := s.Add(ctx, sess); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second read is a cache hit
		if _, err := s.Get(ctx, sess.Prefix, sess.ID); err != nil {
			t.Fatal(err)
		}
	}

	srv.Pause()
	paused := time.Now()
	var lastServed, firstRefused time.Duration
	waitFor(t, "a Get on a hung redis fails", 10*time.Second, func() bool {
		_, err := s.Get(ctx, sess.Prefix, sess.ID)
		switch {
		case err == nil:
			lastServed = time.Since(paused)
			return false
		case errors.Is(err, session.ErrUnavailable):
			firstRefused = time.Since(paused)
			return true
		default:
			t.Fatalf("Get on a hung redis: %v, want ErrUnavailable", err)
			return false
		}
	})
	t.Logf("redis paused: cached session served until %v, first ErrUnavailable at %v", lastServed, firstRefused)
	if firstRefused > 3*time.Second {
		t.Errorf("first ErrUnavailable %v after redis hung, want within 3 s", firstRefused)
	}
	// From then on no lookup is served from the cache, and each fails
	// within the timeout.
	for range 3 {
		start := time.Now()
		if _, err := s.Get(ctx, sess.Prefix, sess.ID); !errors.Is(err, session.ErrUnavailable) {
			t.Fatalf("Get while redis is still hung: %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Get while redis is still hung took %v, want within 3 s", d)
		}
	}

	srv.Resume()
	waitFor(t, "Get works again after redis continued", 10*time.Second, func() bool {
		_, err := s.Get(ctx, sess.Prefix, sess.ID)
		return err == nil
	})
}

// relay forwards TCP connections to a Redis server and can freeze them: no
// byte moves in either direction while frozen, yet every connection stays
// open, and what was held back is delivered in order on thaw — a network
// partition that heals.
type relay struct {
	Addr   string
	mu     sync.Mutex
	thawed *sync.Cond
	frozen bool
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{Addr: ln.Addr().String()}
	r.thawed = sync.NewCond(&r.mu)
	var conns sync.WaitGroup
	t.Cleanup(func() {
		r.Thaw()
		ln.Close()
		conns.Wait()
	})
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			conns.Add(2)
			go r.pipe(&conns, server, client)
			go r.pipe(&conns, client, server)
		}
	}()
	return r
}

// pipe copies src to dst, waiting out every freeze, and closes both when
// either side ends.
func (r *relay) pipe(conns *sync.WaitGroup, dst, src net.Conn) {
	defer conns.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		r.waitThawed()
		n, err := src.Read(buf)
		if n > 0 {
			r.waitThawed()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *relay) waitThawed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.frozen {
		r.thawed.Wait()
	}
}

func (r *relay) Freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = true
}

func (r *relay) Thaw() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = false
	r.thawed.Broadcast()
}

// TestPartitionedNodeDoesNotServeARevokedSession: node A reaches Redis
// through a link that is cut without closing (a partition), node B
// directly. B deletes a session A has cached; A cannot hear of it, so it
// must stop serving the session within the bound, and after the
// partition heals it must see the delete, never the stale copy.
func TestPartitionedNodeDoesNotServeARevokedSession(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	link := startRelay(t, srv.Addr)
	a, b := open(t, link.Addr, redis.Options{}), open(t, srv.Addr, redis.Options{})
	sess := testSession("User1", time.Hour)
	if err := b.Add(ctx, sess); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second read is a cache hit on A
		if _, err := a.Get(ctx, sess.Prefix, sess.ID); err != nil {
			t.Fatal(err)
		}
	}

	link.Freeze()
	cut := time.Now()
	if _, err := b.Delete(ctx, sess.Prefix, sess.ID); err != nil {
		t.Fatal(err)
	}
	var lastServed time.Duration
	waitFor(t, "A stops serving the revoked session", 10*time.Second, func() bool {
		_, err := a.Get(ctx, sess.Prefix, sess.ID)
		if err == nil {
			lastServed = time.Since(cut)
			return false
		}
		if !errors.Is(err, session.ErrUnavailable) {
			t.Fatalf("Get on A during the partition: %v, want ErrUnavailable", err)
		}
		return true
	})
	refused := time.Since(cut)
	t.Logf("partition: A served the revoked session until %v, refused it at %v", lastServed, refused)
	if refused > 3*time.Second {
		t.Errorf("A refused the revoked session %v after the partition, want within 3 s", refused)
	}

	link.Thaw()
	waitFor(t, "A sees the delete after the partition healed", 10*time.Second, func() bool {
		_, err := a.Get(ctx, sess.Prefix, sess.ID)
		if err == nil {
			t.Fatal("A served the revoked session after the partition healed")
		}
		return errors.Is(err, session.ErrNotFound)
	})
}
