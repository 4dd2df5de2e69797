package session

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// shardCount splits the session map so that lookups on different
// sessions rarely meet on one lock. A power of two, so the shard is a mask.
const shardCount = 64

// watchBuffer is the capacity of each Watch channel. A watcher that falls
// this far behind misses events instead of stalling the store.
const watchBuffer = 256

// Memory is the in-memory Store, the reference behaviour every other
// store is tested against. Nothing survives a restart, and a Memory is
// not shared between processes.
//
// All methods are safe for concurrent use. Get and Touch take only a read
// lock on one of 64 shards and do not allocate, so the request path does
// not contend on a global lock. No method blocks on I/O; the ctx
// arguments are accepted for the Store interface; only Watch uses its.
//
// Sessions returned by Get, ByUser and List share their Attributes slice
// with the store: callers must not modify it. Add copies the caller's
// slice, so a caller may reuse it after Add returns.
//
// A background sweeper, owned by the store and stopped by Close, removes
// expired sessions, tickets and targets and reports each expired session
// to watchers as an Event of kind Expired. Expiry does not wait for the
// sweeper: an expired entry is treated as absent at once.
type Memory struct {
	now     func() time.Time
	shards  [shardCount]sessionShard
	users   userIndex
	tickets timedMap[Ticket]
	targets timedMap[Target]
	watch   watchers

	journal Journal
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
	cfg := memoryConfig{now: time.Now, sweepInterval: DefaultSweepInterval, journal: nopJournal{}}
	for _, o := range opts {
		o(&cfg)
	}
	m := &Memory{
		now:     cfg.now,
		journal: cfg.journal,
		useGran: int64(cfg.useGranularity),
		max:     int64(max(cfg.maxSessions, 0)),
		stop:    make(chan struct{}),
		swept:   make(chan struct{}),
	}
	for i := range m.shards {
		m.shards[i].sessions = make(map[sessionKey]*entry)
	}
	for i := range m.users.shards {
		m.users.shards[i].keys = make(map[string][]sessionKey)
	}
	m.tickets.items = make(map[string]timed[Ticket])
	m.targets.items = make(map[string]timed[Target])
	m.watch.channels = make(map[chan Event]func() bool)
	go m.sweepEvery(cfg.sweepInterval)
	return m
}

// sessionKey identifies a session. A struct rather than a joined string,
// so that a lookup does not allocate.
type sessionKey struct{ prefix, id string }

// entry is a stored session, kept compact: at a million sessions every
// field counts. LastUsed lives in an atomic so Touch can slide it under a
// read lock; times are unix nanoseconds.
type entry struct {
	prefix, id        string
	directory, userID string
	attributes        []Attribute
	userKey           string
	created           int64
	timeout           time.Duration
	lastUsed          atomic.Int64
}

func newEntry(s Session) *entry {
	e := &entry{
		prefix: s.Prefix, id: s.ID, directory: intern(s.UserDirectory), userID: s.UserID,
		attributes: internAttributes(s.Attributes),
		userKey:    UserKey(s.Prefix, s.UserDirectory, s.UserID),
		created:    s.Created.UnixNano(),
		timeout:    s.Timeout,
	}
	e.lastUsed.Store(s.LastUsed.UnixNano())
	return e
}

// expired reports whether the session has timed out at now (unix nanoseconds).
func (e *entry) expired(now int64) bool {
	timeout := int64(e.timeout)
	if timeout <= 0 {
		return false
	}
	last := e.lastUsed.Load()
	if last > math.MaxInt64-timeout {
		return false // ends after the year 2262: never, for us
	}
	return now >= last+timeout
}

// snapshot returns the session as callers see it.
func (e *entry) snapshot() Session {
	return Session{
		Prefix: e.prefix, ID: e.id, UserDirectory: e.directory, UserID: e.userID,
		Attributes: e.attributes,
		Created:    time.Unix(0, e.created).UTC(),
		LastUsed:   time.Unix(0, e.lastUsed.Load()).UTC(),
		Timeout:    e.timeout,
	}
}

// touch moves lastUsed forward to at; an earlier at leaves it unchanged.
// It returns the lastUsed it replaced, or at when it changed nothing.
func (e *entry) touch(at int64) int64 {
	for {
		last := e.lastUsed.Load()
		if at <= last {
			return at
		}
		if e.lastUsed.CompareAndSwap(last, at) {
			return last
		}
	}
}

type sessionShard struct {
	mu       sync.RWMutex
	sessions map[sessionKey]*entry
}

func (m *Memory) shard(k sessionKey) *sessionShard {
	return &m.shards[fnv32(k.prefix, k.id)&(shardCount-1)]
}

// fnv32 is FNV-1a over a, a zero byte and b, without building the string.
func fnv32(a, b string) uint32 {
	const (
		offset = 2166136261
		prime  = 16777619
	)
	h := uint32(offset)
	for i := 0; i < len(a); i++ {
		h = (h ^ uint32(a[i])) * prime
	}
	h *= prime // the separator byte: ("ab","c") and ("a","bc") differ
	for i := 0; i < len(b); i++ {
		h = (h ^ uint32(b[i])) * prime
	}
	return h
}

// lookup returns the live entry under k, or nil. The caller holds sh.mu.
func (sh *sessionShard) lookup(k sessionKey, now int64) *entry {
	e := sh.sessions[k]
	if e == nil || e.expired(now) {
		return nil
	}
	return e
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
	e := newEntry(s)

	k := sessionKey{s.Prefix, s.ID}
	sh := m.shard(k)
	sh.mu.Lock()
	old := sh.sessions[k]
	if old != nil && !old.expired(now.UnixNano()) {
		sh.mu.Unlock()
		return fmt.Errorf("add session %s in virtual proxy %q: %w", Redact(s.ID), s.Prefix, ErrExists)
	}
	if old != nil {
		m.users.remove(old.userKey, k)
	} else if !m.reserve() {
		sh.mu.Unlock()
		return fmt.Errorf("add session %s: %w (%d sessions, the configured maximum)", Redact(s.ID), ErrFull, m.max)
	}
	sh.sessions[k] = e
	m.users.add(e.userKey, k)
	commit := m.journal.SessionAdded(s)
	sh.mu.Unlock()

	if old != nil {
		m.watch.emit(endEvent(Expired, old))
	}
	if err := commit(); err != nil {
		m.forget(k, e)
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

// forget drops the entry e, which the journal failed to make durable,
// unless it has been removed or replaced since.
func (m *Memory) forget(k sessionKey, e *entry) {
	sh := m.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.sessions[k] != e {
		return
	}
	delete(sh.sessions, k)
	m.users.remove(e.userKey, k)
	m.count.Add(-1)
}

// Get returns the live session, or ErrNotFound. It does not allocate on
// a hit; the returned Attributes are shared with the store (read-only).
func (m *Memory) Get(_ context.Context, prefix, id string) (Session, error) {
	now := m.now().UnixNano()
	k := sessionKey{prefix, id}
	sh := m.shard(k)
	sh.mu.RLock()
	e := sh.lookup(k, now)
	if e == nil {
		sh.mu.RUnlock()
		return Session{}, ErrNotFound
	}
	s := e.snapshot()
	sh.mu.RUnlock()
	return s, nil
}

// Touch moves the session's LastUsed forward to at, sliding its
// inactivity timeout; an at before the current LastUsed changes nothing.
// It returns ErrNotFound for an absent or expired session: a touch does
// not revive one. Touch takes only a read lock and does not allocate.
func (m *Memory) Touch(_ context.Context, prefix, id string, at time.Time) error {
	now := m.now().UnixNano()
	k := sessionKey{prefix, id}
	sh := m.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	e := sh.lookup(k, now)
	if e == nil {
		return ErrNotFound
	}
	n := at.UnixNano()
	if old := e.touch(n); m.useGran > 0 && old/m.useGran != n/m.useGran {
		m.journal.SessionUsed(prefix, id, time.Unix(0, e.created), at)
	}
	return nil
}

// Delete removes the live session and returns it; ErrNotFound when it is
// absent or expired. Watchers see an Event of kind Deleted. With a
// journal, Delete returns once the removal is durable.
func (m *Memory) Delete(_ context.Context, prefix, id string) (Session, error) {
	e, commit := m.remove(sessionKey{prefix, id}, "")
	if e == nil {
		return Session{}, ErrNotFound
	}
	m.watch.emit(endEvent(Deleted, e))
	if err := commit(); err != nil {
		return Session{}, fmt.Errorf("delete session %s: %w", Redact(id), err)
	}
	return e.snapshot(), nil
}

// remove deletes the live session under k and returns it with the
// journal's commit of the removal, or nil. A non-empty userKey must
// match: between reading the user index and removing, the id may have
// been taken by another user's session.
func (m *Memory) remove(k sessionKey, userKey string) (*entry, Commit) {
	now := m.now().UnixNano()
	sh := m.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.lookup(k, now)
	if e == nil || (userKey != "" && e.userKey != userKey) {
		return nil, nil
	}
	delete(sh.sessions, k)
	m.users.remove(e.userKey, k)
	m.count.Add(-1)
	return e, m.journal.SessionRemoved(k.prefix, k.id)
}

// ByUser returns the live sessions of the user in the virtual proxy,
// matching directory and user id case-insensitively, oldest first.
// It returns an empty slice when there are none.
func (m *Memory) ByUser(_ context.Context, prefix, directory, userID string) ([]Session, error) {
	uk := UserKey(prefix, directory, userID)
	now := m.now().UnixNano()
	var out []Session
	for _, k := range m.users.keys(uk) {
		sh := m.shard(k)
		sh.mu.RLock()
		if e := sh.lookup(k, now); e != nil && e.userKey == uk {
			out = append(out, e.snapshot())
		}
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
	var out []Session
	var events []Event
	var commits []Commit
	for _, k := range m.users.keys(uk) {
		if e, commit := m.remove(k, uk); e != nil {
			out = append(out, e.snapshot())
			events = append(events, endEvent(LoggedOut, e))
			commits = append(commits, commit)
		}
	}
	m.watch.emit(events...)
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
		for k, e := range sh.sessions {
			if k.prefix == prefix && !e.expired(now) {
				out = append(out, e.snapshot())
			}
		}
		sh.mu.RUnlock()
	}
	sortSessions(out)
	return out, nil
}

// Len returns the number of sessions held, including expired ones the
// sweeper has not removed yet. Meant for metrics.
func (m *Memory) Len() int {
	return int(m.count.Load())
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

// PutTarget stores t until t.Expires, replacing a target with the same
// id. A target without Expires is an error: it would never end.
func (m *Memory) PutTarget(_ context.Context, t Target) error {
	if t.Expires.IsZero() {
		return fmt.Errorf("put target %s: Expires is not set", t.ID)
	}
	if err := m.journal.TargetPut(t)(); err != nil {
		return fmt.Errorf("put target %s: %w", t.ID, err)
	}
	m.targets.put(t.ID, t, t.Expires)
	return nil
}

// GetTarget returns the live target, or ErrNotFound. It may be called
// any number of times until the target expires.
func (m *Memory) GetTarget(_ context.Context, id string) (Target, error) {
	t, ok := m.targets.get(id, m.now())
	if !ok {
		return Target{}, ErrNotFound
	}
	return t, nil
}

// Watch returns a channel of sessions that end after Watch returns. Each
// watcher has its own buffer of 256 events; when it is full, events for
// that watcher are dropped rather than stalling the store. The channel
// is closed when ctx ends or the store is closed.
func (m *Memory) Watch(ctx context.Context) <-chan Event {
	return m.watch.add(ctx)
}

// Close stops the sweeper and closes every Watch channel. It is safe to
// call more than once. The store still answers afterwards, but nothing
// is swept and no events are delivered.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.swept
		m.watch.close()
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
	m.targets.sweep(now)
	m.watch.emit(events...)
}

func (m *Memory) sweepShard(sh *sessionShard, now int64, events []Event) []Event {
	var expired []sessionKey
	sh.mu.RLock()
	for k, e := range sh.sessions {
		if e.expired(now) {
			expired = append(expired, k)
		}
	}
	sh.mu.RUnlock()
	if len(expired) == 0 {
		return events
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, k := range expired {
		// Recheck: since the scan the session may have been touched,
		// deleted, or replaced.
		e := sh.sessions[k]
		if e == nil || !e.expired(now) {
			continue
		}
		delete(sh.sessions, k)
		m.users.remove(e.userKey, k)
		m.count.Add(-1)
		m.journal.SessionRemoved(k.prefix, k.id) // no one waits for a sweep
		events = append(events, endEvent(Expired, e))
	}
	return events
}

func endEvent(kind EventKind, e *entry) Event {
	return Event{
		Kind: kind, Prefix: e.prefix, ID: e.id,
		UserDirectory: e.directory, UserID: e.userID,
	}
}

// sortSessions orders sessions oldest first, so answers do not depend on
// map order.
func sortSessions(ss []Session) {
	slices.SortFunc(ss, func(a, b Session) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
}

// userIndex maps a UserKey to the keys of that user's sessions. A user
// has a handful of sessions at most, so a small slice per user beats a
// nested map: at a million users the nested maps cost ~300 bytes each.
type userIndex struct {
	shards [shardCount]userShard
}

type userShard struct {
	mu   sync.RWMutex
	keys map[string][]sessionKey
}

func (x *userIndex) shard(userKey string) *userShard {
	return &x.shards[fnv32(userKey, "")&(shardCount-1)]
}

func (x *userIndex) add(userKey string, k sessionKey) {
	sh := x.shard(userKey)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.keys[userKey]
	if slices.Contains(list, k) {
		return
	}
	sh.keys[userKey] = append(list, k)
}

func (x *userIndex) remove(userKey string, k sessionKey) {
	sh := x.shard(userKey)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.keys[userKey]
	i := slices.Index(list, k)
	if i < 0 {
		return
	}
	if len(list) == 1 {
		delete(sh.keys, userKey)
		return
	}
	list[i] = list[len(list)-1]
	list[len(list)-1] = sessionKey{}
	sh.keys[userKey] = list[:len(list)-1]
}

// keys returns a copy of the user's session keys, so the caller can visit
// the session shards without holding the user shard.
func (x *userIndex) keys(userKey string) []sessionKey {
	sh := x.shard(userKey)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return slices.Clone(sh.keys[userKey])
}

// timedMap holds tickets or targets by id until they expire.
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

func (tm *timedMap[V]) get(id string, now time.Time) (V, bool) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	it, ok := tm.items[id]
	if !ok || !now.Before(it.expires) {
		var zero V
		return zero, false
	}
	return it.value, true
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

// watchers fans events out to every Watch channel without blocking.
type watchers struct {
	mu       sync.RWMutex
	channels map[chan Event]func() bool // channel → stop of its context.AfterFunc
	closed   bool
}

func (w *watchers) add(ctx context.Context) <-chan Event {
	ch := make(chan Event, watchBuffer)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		close(ch)
		return ch
	}
	// AfterFunc, not a goroutine per watcher: remove runs when ctx ends.
	// It takes w.mu, so it waits until this function has registered ch.
	w.channels[ch] = context.AfterFunc(ctx, func() { w.remove(ch) })
	return ch
}

func (w *watchers) remove(ch chan Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.channels[ch]; ok {
		delete(w.channels, ch)
		close(ch)
	}
}

// emit sends each event to every watcher that has room. Channels are
// closed only under the write lock, so a send here never hits a closed one.
func (w *watchers) emit(events ...Event) {
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

func (w *watchers) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for ch, stop := range w.channels {
		stop()
		delete(w.channels, ch)
		close(ch)
	}
}
