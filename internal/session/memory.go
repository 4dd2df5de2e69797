package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// shardCount splits the session map so that lookups on different
// sessions rarely meet on one lock. A power of two: the shard is the top
// shardBits bits of a hash.
const (
	shardBits  = 6
	shardCount = 1 << shardBits
)

// Memory is the in-memory Store, the reference behaviour every other
// store is tested against. Nothing survives a restart, and a Memory is
// not shared between processes.
//
// All methods are safe for concurrent use. Get and Touch take only a read
// lock on one of 64 shards, and Touch does not allocate, so the request
// path does not contend on a global lock. Sessions are kept without a
// pointer each (see memory_shard.go), so a million of them cost the
// garbage collector nothing to scan. No method blocks on I/O; the ctx
// arguments are accepted for the Store interface; only Watch uses its.
//
// Sessions returned by Get, ByUser and List share their Attributes slice
// with the store: callers must not modify it. Add copies the caller's
// slice, so a caller may reuse it after Add returns.
//
// A background sweeper, owned by the store and stopped by Close, removes
// expired sessions and tickets and reports each expired session
// to watchers as an Event of kind Expired. Expiry does not wait for the
// sweeper: an expired entry is treated as absent at once.
type Memory struct {
	now      func() time.Time
	seed     maphash.Seed
	hashMask uint64 // all ones, but for tests that force collisions
	shards   [shardCount]sessionShard
	users    userIndex
	tickets  timedMap[Ticket]
	secrets  sync.Map // name → []byte, see Secret
	watch    Watchers

	journal Journal      // nopJournal unless WithJournal
	useGran int64        // WithJournal's use granularity, nanoseconds
	max     int64        // WithMaxSessions; 0: no cap
	count   atomic.Int64 // sessions held, expired ones included

	closeOnce sync.Once
	stop      chan struct{} // closed by Close to end the sweeper
	swept     chan struct{} // closed by the sweeper when it has ended
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store and starts its sweeper. Call
// Close to stop the sweeper.
func NewMemory(opts ...Option) *Memory {
	cfg := memoryConfig{now: time.Now, sweepInterval: DefaultSweepInterval, hashMask: math.MaxUint64,
		attributeSets: defaultAttributeSets, compactMin: defaultCompactMin, journal: nopJournal{}}
	for _, o := range opts {
		o(&cfg)
	}
	m := &Memory{
		now:      cfg.now,
		seed:     maphash.MakeSeed(),
		hashMask: cfg.hashMask,
		journal:  cfg.journal,
		useGran:  int64(cfg.useGranularity),
		max:      int64(max(cfg.maxSessions, 0)),
		stop:     make(chan struct{}),
		swept:    make(chan struct{}),
	}
	for i := range m.shards {
		m.shards[i].init(&cfg)
	}
	m.users.init()
	m.tickets.items = make(map[string]timed[Ticket])
	go m.sweepEvery(cfg.sweepInterval)
	return m
}

func (m *Memory) shard(h uint64) *sessionShard {
	return &m.shards[h>>(64-shardBits)]
}

// sessionHash is the index key of a session. The seed is random per store,
// so clients cannot choose ids that collide.
func (m *Memory) sessionHash(prefix, id string) uint64 {
	var h maphash.Hash
	h.SetSeed(m.seed)
	h.WriteString(prefix)
	h.WriteByte(0)
	h.WriteString(id)
	return h.Sum64() & m.hashMask
}

// userHash is the user index key of a UserKey.
func (m *Memory) userHash(userKey string) uint64 {
	return maphash.String(m.seed, userKey) & m.hashMask
}

// Add stores a copy of s. It returns ErrExists when a live session with
// the same Prefix and ID exists; an expired one is replaced (and reported
// to watchers as Expired). A zero Created or LastUsed is set to the
// store's current time. With a journal, Add returns once the journal has
// made the session durable; if it cannot, the session is not kept.
// At the WithMaxSessions cap Add returns ErrFull.
func (m *Memory) Add(_ context.Context, s Session) error {
	now := m.now()
	if s.Created.IsZero() {
		s.Created = now
	}
	if s.LastUsed.IsZero() {
		s.LastUsed = now
	}
	var attrs []byte
	if len(s.Attributes) > 0 {
		attrs = appendAttributes(nil, s.Attributes)
	}
	h := m.sessionHash(s.Prefix, s.ID)
	user := m.userHash(UserKey(s.Prefix, s.UserDirectory, s.UserID))

	sh := m.shard(h)
	sh.mu.Lock()
	var old *Session
	if i, ok := sh.find(h, s.Prefix, s.ID); ok {
		if !sh.records[i].expired(now.UnixNano()) {
			sh.mu.Unlock()
			return fmt.Errorf("add session %s in virtual proxy %q: %w", Redact(s.ID), s.Prefix, ErrExists)
		}
		// The journal's add below replaces it: no removal to wait for.
		gone, _ := m.removeRecord(sh, i)
		old = &gone
		m.count.Add(1)
	} else if !m.reserve() {
		sh.mu.Unlock()
		return fmt.Errorf("add session %s: %w (%d sessions, the configured maximum)", Redact(s.ID), ErrFull, m.max)
	}
	sh.insert(h, &s, attrs)
	m.users.add(user, h)
	commit := m.journal.SessionAdded(s)
	sh.mu.Unlock()

	if old != nil {
		m.watch.Emit(endEvent(Expired, *old))
	}
	if err := commit(); err != nil {
		m.forget(h, s)
		return fmt.Errorf("add session %s in virtual proxy %q: %w", Redact(s.ID), s.Prefix, err)
	}
	return nil
}

// reserve counts one more session, unless that would pass the cap.
func (m *Memory) reserve() bool {
	for {
		n := m.count.Load()
		if m.max > 0 && n >= m.max {
			return false
		}
		if m.count.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// forget drops the session s, which the journal failed to make durable,
// unless it has been removed or replaced (by a session created at another
// time) since. The journal is not told: it never wrote s.
func (m *Memory) forget(h uint64, s Session) {
	sh := m.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(h, s.Prefix, s.ID)
	if !ok || sh.records[i].created != s.Created.UnixNano() {
		return
	}
	m.users.remove(m.userHash(UserKey(s.Prefix, s.UserDirectory, s.UserID)), h)
	sh.remove(i)
	m.count.Add(-1)
}

// removeRecord removes record i of sh from the shard and the user index
// and returns it, with the journal's commit of the removal. The caller
// holds sh.mu for writing.
func (m *Memory) removeRecord(sh *sessionShard, i uint32) (Session, Commit) {
	s := sh.session(i)
	m.users.remove(m.userHash(UserKey(s.Prefix, s.UserDirectory, s.UserID)), sh.records[i].hash)
	sh.remove(i)
	m.count.Add(-1)
	return s, m.journal.SessionRemoved(s.Prefix, s.ID)
}

// Get returns the live session, or ErrNotFound. A hit makes one small
// allocation (the user directory and id); the returned Attributes are
// shared with the store (read-only).
func (m *Memory) Get(_ context.Context, prefix, id string) (Session, error) {
	now := m.now().UnixNano()
	h := m.sessionHash(prefix, id)
	sh := m.shard(h)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	i, ok := sh.find(h, prefix, id)
	if !ok || sh.records[i].expired(now) {
		return Session{}, ErrNotFound
	}
	return sh.get(i, prefix, id), nil
}

// Touch moves the session's LastUsed forward to at, sliding its
// inactivity timeout; an at before the current LastUsed changes nothing.
// It returns ErrNotFound for an absent or expired session: a touch does
// not revive one. Touch takes only a read lock and does not allocate.
func (m *Memory) Touch(_ context.Context, prefix, id string, at time.Time) error {
	now := m.now().UnixNano()
	h := m.sessionHash(prefix, id)
	sh := m.shard(h)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	i, ok := sh.find(h, prefix, id)
	if !ok || sh.records[i].expired(now) {
		return ErrNotFound
	}
	r := &sh.records[i]
	n := at.UnixNano()
	if old := r.touch(n); m.useGran > 0 && old/m.useGran != n/m.useGran {
		m.journal.SessionUsed(prefix, id, time.Unix(0, r.created), at)
	}
	return nil
}

// Delete removes the live session and returns it; ErrNotFound when it is
// absent or expired. Watchers see an Event of kind Deleted. With a
// journal, Delete returns once the removal is durable.
func (m *Memory) Delete(_ context.Context, prefix, id string) (Session, error) {
	now := m.now().UnixNano()
	h := m.sessionHash(prefix, id)
	sh := m.shard(h)
	sh.mu.Lock()
	i, ok := sh.find(h, prefix, id)
	if !ok || sh.records[i].expired(now) {
		sh.mu.Unlock()
		return Session{}, ErrNotFound
	}
	s, commit := m.removeRecord(sh, i)
	sh.mu.Unlock()
	m.watch.Emit(endEvent(Deleted, s))
	if err := commit(); err != nil {
		return Session{}, fmt.Errorf("delete session %s: %w", Redact(id), err)
	}
	return s, nil
}

// ByUser returns the live sessions of the user in the virtual proxy,
// matching directory and user id case-insensitively, oldest first.
// It returns an empty slice when there are none.
func (m *Memory) ByUser(_ context.Context, prefix, directory, userID string) ([]Session, error) {
	uk := UserKey(prefix, directory, userID)
	now := m.now().UnixNano()
	var out []Session
	for _, h := range m.users.sessions(m.userHash(uk)) {
		sh := m.shard(h)
		sh.mu.RLock()
		sh.chain(h, func(i uint32) {
			if sh.records[i].expired(now) {
				return
			}
			if s := sh.session(i); UserKey(s.Prefix, s.UserDirectory, s.UserID) == uk {
				out = append(out, s)
			}
		})
		sh.mu.RUnlock()
	}
	sortSessions(out)
	return out, nil
}

// DeleteUser removes every live session of the user in the virtual proxy
// and returns them, oldest first. Watchers see an Event of kind LoggedOut
// for each. A session added while DeleteUser runs may survive it. With a
// journal, DeleteUser returns once the removals are durable.
func (m *Memory) DeleteUser(_ context.Context, prefix, directory, userID string) ([]Session, error) {
	uk := UserKey(prefix, directory, userID)
	now := m.now().UnixNano()
	var out []Session
	var events []Event
	var commits []Commit
	for _, h := range m.users.sessions(m.userHash(uk)) {
		sh := m.shard(h)
		sh.mu.Lock()
		sh.chain(h, func(i uint32) {
			if sh.records[i].expired(now) {
				return
			}
			if s := sh.session(i); UserKey(s.Prefix, s.UserDirectory, s.UserID) == uk {
				_, commit := m.removeRecord(sh, i)
				out = append(out, s)
				events = append(events, endEvent(LoggedOut, s))
				commits = append(commits, commit)
			}
		})
		sh.mu.Unlock()
	}
	m.watch.Emit(events...)
	for _, commit := range commits {
		if err := commit(); err != nil {
			return nil, fmt.Errorf("log out %s\\%s: %w", directory, userID, err)
		}
	}
	sortSessions(out)
	return out, nil
}

// List returns every live session of the virtual proxy, oldest first.
// It visits every shard; it is meant for the API, not the request path.
func (m *Memory) List(_ context.Context, prefix string) ([]Session, error) {
	now := m.now().UnixNano()
	var out []Session
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		for j := range sh.records {
			r := &sh.records[j]
			if r.size == 0 || r.expired(now) {
				continue
			}
			b := sh.bytes(r)
			if p := nextField(b, 0); string(b[p.start:p.end]) == prefix {
				out = append(out, sh.session(uint32(j)))
			}
		}
		sh.mu.RUnlock()
	}
	sortSessions(out)
	return out, nil
}

// Count returns the number of live sessions of the virtual proxy,
// without copying them out as List does.
func (m *Memory) Count(_ context.Context, prefix string) (int, error) {
	now := m.now().UnixNano()
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		for j := range sh.records {
			r := &sh.records[j]
			if r.size == 0 || r.expired(now) {
				continue
			}
			b := sh.bytes(r)
			if p := nextField(b, 0); string(b[p.start:p.end]) == prefix {
				n++
			}
		}
		sh.mu.RUnlock()
	}
	return n, nil
}

var _ Counter = (*Memory)(nil)

// Len returns the number of sessions held, including expired ones the
// sweeper has not removed yet. Meant for metrics.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		n += sh.live
		sh.mu.RUnlock()
	}
	return n
}

// PutTicket stores a copy of t until t.Expires, replacing a ticket with
// the same id. A ticket without Expires is an error: it would never end.
// With a journal, the ticket can be taken only once it is durable.
func (m *Memory) PutTicket(_ context.Context, t Ticket) error {
	if t.Expires.IsZero() {
		return fmt.Errorf("put ticket %s: Expires is not set", Redact(t.ID))
	}
	t.Attributes = slices.Clone(t.Attributes)
	if err := m.journal.TicketPut(t)(); err != nil {
		return fmt.Errorf("put ticket %s: %w", Redact(t.ID), err)
	}
	m.tickets.put(t.ID, t, t.Expires)
	return nil
}

// TakeTicket returns the ticket and removes it under one lock, so of
// concurrent calls with the same id at most one succeeds. An absent,
// expired or already taken ticket is ErrNotFound.
func (m *Memory) TakeTicket(_ context.Context, id string) (Ticket, error) {
	t, ok := m.tickets.take(id, m.now())
	if !ok {
		return Ticket{}, ErrNotFound
	}
	// Redeemed only once the journal will not bring it back.
	if err := m.journal.TicketTaken(id)(); err != nil {
		return Ticket{}, fmt.Errorf("take ticket %s: %w", Redact(id), err)
	}
	return t, nil
}

// Secret returns the named secret, made at random on first use. It lives
// as long as the store: a Memory is not shared, so one process agreeing
// with itself is all there is to agree on.
func (m *Memory) Secret(_ context.Context, name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("secret: empty name")
	}
	if v, ok := m.secrets.Load(name); ok {
		return v.([]byte), nil
	}
	v, _ := m.secrets.LoadOrStore(name, NewSecret())
	return v.([]byte), nil
}

// Watch returns a channel of sessions that end after Watch returns. Each
// watcher has its own buffer of 256 events; when it is full, events for
// that watcher are dropped rather than stalling the store. The channel
// is closed when ctx ends or the store is closed.
func (m *Memory) Watch(ctx context.Context) <-chan Event {
	return m.watch.Watch(ctx)
}

// Close stops the sweeper and closes every Watch channel. It is safe to
// call more than once. The store still answers afterwards, but nothing
// is swept and no events are delivered.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.swept
		m.watch.Close()
	})
	return nil
}

func (m *Memory) sweepEvery(interval time.Duration) {
	defer close(m.swept)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
			m.sweep(m.now())
		}
	}
}

// sweep removes what has expired at now and reports the sessions to
// watchers. Each shard is scanned under its read lock; the write lock is
// taken only when there is something to remove, so lookups are not held
// up by a scan.
func (m *Memory) sweep(now time.Time) {
	n := now.UnixNano()
	var events []Event
	for i := range m.shards {
		events = m.sweepShard(&m.shards[i], n, events)
	}
	m.tickets.sweep(now)
	m.watch.Emit(events...)
}

func (m *Memory) sweepShard(sh *sessionShard, now int64, events []Event) []Event {
	var expired []uint32
	sh.mu.RLock()
	for i := range sh.records {
		if r := &sh.records[i]; r.size != 0 && r.expired(now) {
			expired = append(expired, uint32(i))
		}
	}
	sh.mu.RUnlock()
	if len(expired) == 0 {
		return events
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, i := range expired {
		// Recheck: since the scan the session may have been touched or
		// deleted, and its slot reused.
		if r := &sh.records[i]; r.size == 0 || !r.expired(now) {
			continue
		}
		s, _ := m.removeRecord(sh, i) // no one waits for a sweep
		events = append(events, endEvent(Expired, s))
	}
	return events
}

func endEvent(kind EventKind, s Session) Event {
	return Event{
		Kind: kind, Prefix: s.Prefix, ID: s.ID,
		UserDirectory: s.UserDirectory, UserID: s.UserID,
	}
}

// sortSessions orders sessions oldest first, so answers do not depend on
// map order.
func sortSessions(ss []Session) {
	slices.SortFunc(ss, func(a, b Session) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
}

// timedMap holds tickets by id until they expire.
type timedMap[V any] struct {
	mu    sync.Mutex
	items map[string]timed[V]
}

type timed[V any] struct {
	value   V
	expires time.Time
}

func (tm *timedMap[V]) put(id string, v V, expires time.Time) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	tm.items[id] = timed[V]{v, expires}
}

// take returns the live value and removes it; an expired one is removed
// too, but not returned.
func (tm *timedMap[V]) take(id string, now time.Time) (V, bool) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	it, ok := tm.items[id]
	delete(tm.items, id)
	if !ok || !now.Before(it.expires) {
		var zero V
		return zero, false
	}
	return it.value, true
}

func (tm *timedMap[V]) sweep(now time.Time) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	for id, it := range tm.items {
		if !now.Before(it.expires) {
			delete(tm.items, id)
		}
	}
}
