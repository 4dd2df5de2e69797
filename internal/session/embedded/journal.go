package embedded

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/openqps/openqps/internal/session"
)

// journal writes the Memory store's changes to the bbolt file with group
// commit: changes queue into the open batch, and one goroutine commits
// whole batches, each in one transaction with one fsync. While a batch is
// being committed the next one fills up, so under load many adds share
// an fsync, and each caller waits only for the commit of its own batch.
//
// Changes of one session are queued in the order the store made them
// (the store holds the session's lock while queueing), and batches are
// committed in order, so the file never sees a delete before the add it
// undoes.
type journal struct {
	db   *bolt.DB
	path string

	mu     sync.Mutex
	open   *batch        // the batch changes queue into
	wake   chan struct{} // tells the committer the open batch has work
	closed bool

	usedMu sync.Mutex
	used   map[string]use // session key → newest use not yet written

	// loading turns the journal off while Open fills the store from the
	// file: what is read need not be written back.
	loading atomic.Bool
	done    chan struct{} // closed when the committer has ended
	commits atomic.Int64  // transactions committed
	queued  atomic.Int64  // changes queued
}

type batch struct {
	ops  []op
	done chan struct{} // closed when the batch is committed or failed
	err  error
}

// op is one change: a put or a delete of key in bucket, or a flush of
// use times (used).
type op struct {
	bucket []byte
	key    []byte
	value  []byte // nil: delete
	used   map[string]use
	sweep  time.Time // not zero: remove tickets expired then
}

// isDelete reports whether o deletes its key (rather than putting it,
// flushing use times or sweeping).
func (o op) isDelete() bool { return o.value == nil && o.used == nil && o.sweep.IsZero() }

// use is a session's newest LastUsed, with its Created time, so that a
// flush does not move the use time of a session that replaced it.
type use struct {
	created, lastUsed int64
}

func newJournal(db *bolt.DB, path string) *journal {
	j := &journal{
		db:   db,
		path: path,
		open: &batch{done: make(chan struct{})},
		wake: make(chan struct{}, 1),
		used: make(map[string]use),
		done: make(chan struct{}),
	}
	go j.commitLoop()
	return j
}

var _ session.Journal = (*journal)(nil)

func (j *journal) SessionAdded(s session.Session) session.Commit {
	if j.loading.Load() {
		return noCommit // read from the file: already there
	}
	return j.queue(op{bucket: sessionsBucket, key: sessionKey(s.Prefix, s.ID), value: encodeSession(s)})
}

func (j *journal) SessionRemoved(prefix, id string) session.Commit {
	return j.queue(op{bucket: sessionsBucket, key: sessionKey(prefix, id)})
}

func (j *journal) SessionUsed(prefix, id string, created, lastUsed time.Time) {
	if j.loading.Load() {
		return
	}
	k := prefix + "\x00" + id
	u := use{created.UnixNano(), lastUsed.UnixNano()}
	j.usedMu.Lock()
	if old, ok := j.used[k]; !ok || old.created != u.created || old.lastUsed < u.lastUsed {
		j.used[k] = u
	}
	j.usedMu.Unlock()
}

func (j *journal) TicketPut(t session.Ticket) session.Commit {
	return j.queue(op{bucket: ticketsBucket, key: []byte(t.ID), value: encodeTicket(t)})
}

func (j *journal) TicketTaken(id string) session.Commit {
	return j.queue(op{bucket: ticketsBucket, key: []byte(id)})
}

// usedChunk bounds the use times written in one transaction, so that a
// flush of many sessions does not hold up the adds queued behind it.
var usedChunk = 10_000

// flushUsed writes the use times recorded since the last flush, a chunk
// per commit, and waits for them to be written.
func (j *journal) flushUsed() error {
	j.usedMu.Lock()
	used := j.used
	if len(used) == 0 {
		j.usedMu.Unlock()
		return nil
	}
	j.used = make(map[string]use, len(used))
	j.usedMu.Unlock()
	chunk := make(map[string]use, min(len(used), usedChunk))
	for k, u := range used {
		chunk[k] = u
		if len(chunk) == usedChunk {
			if err := j.queue(op{used: chunk})(); err != nil {
				return err
			}
			chunk = make(map[string]use, usedChunk)
		}
	}
	if len(chunk) == 0 {
		return nil
	}
	return j.queue(op{used: chunk})()
}

// sweep removes the tickets that expired at now from the file
// (the store forgets them by itself; sessions are removed as the store
// sweeps them).
func (j *journal) sweep(now time.Time) error {
	return j.queue(op{sweep: now})()
}

func (j *journal) queue(o op) session.Commit {
	if j.loading.Load() {
		return noCommit
	}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return func() error { return fmt.Errorf("session store %s is closed: %w", j.path, session.ErrUnavailable) }
	}
	b := j.open
	b.ops = append(b.ops, o)
	j.mu.Unlock()
	j.queued.Add(1)
	select {
	case j.wake <- struct{}{}:
	default: // the committer has been woken already
	}
	return func() error {
		<-b.done
		return b.err
	}
}

func noCommit() error { return nil }

// close commits what is queued and stops the committer.
func (j *journal) close() {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		<-j.done
		return
	}
	j.closed = true
	j.mu.Unlock()
	close(j.wake)
	<-j.done
}

func (j *journal) commitLoop() {
	defer close(j.done)
	for range j.wake {
		j.commitOpen()
	}
	j.commitOpen() // what was queued before close
}

func (j *journal) commitOpen() {
	j.mu.Lock()
	b := j.open
	j.open = &batch{done: make(chan struct{})}
	j.mu.Unlock()
	if len(b.ops) > 0 {
		if err := j.db.Update(func(tx *bolt.Tx) error { return apply(tx, b.ops) }); err != nil {
			b.err = fmt.Errorf("write session store %s: %v: %w", j.path, err, session.ErrUnavailable)
			j.retryRemovals(b.ops)
		}
		j.commits.Add(1)
	}
	close(b.done)
}

// retryRemovals puts the removals of a batch that failed at the front of
// the open batch, so the next commit (or the last one, at close) makes
// them. Their callers were told of the failure, but the store has
// forgotten the session or ticket already: were the file to keep it, a
// restart would bring back a session that was logged out, or a ticket
// that was redeemed. Puts are not retried: the store undid them. The
// removals go before the changes queued since, which come after them.
func (j *journal) retryRemovals(ops []op) {
	var removals []op
	for _, o := range ops {
		if o.isDelete() {
			removals = append(removals, o)
		}
	}
	if len(removals) == 0 {
		return
	}
	j.mu.Lock()
	j.open.ops = append(removals, j.open.ops...)
	j.mu.Unlock()
}

// apply makes the batch's changes in one transaction, in order.
func apply(tx *bolt.Tx, ops []op) error {
	for _, o := range ops {
		var err error
		switch {
		case o.used != nil:
			err = applyUsed(tx.Bucket(sessionsBucket), o.used)
		case !o.sweep.IsZero():
			err = sweepExpired(tx, o.sweep)
		case o.isDelete():
			err = tx.Bucket(o.bucket).Delete(o.key)
		default:
			err = tx.Bucket(o.bucket).Put(o.key, o.value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// applyUsed moves the stored LastUsed of each session forward; sessions
// removed or replaced since are left alone.
func applyUsed(b *bolt.Bucket, used map[string]use) error {
	for k, u := range used {
		key := []byte(k)
		v := b.Get(key)
		if len(v) < sessionFixed || int64(binary.BigEndian.Uint64(v[8:])) != u.created ||
			int64(binary.BigEndian.Uint64(v[0:])) >= u.lastUsed {
			continue
		}
		nv := bytes.Clone(v) // v belongs to the transaction's pages
		binary.BigEndian.PutUint64(nv[0:], uint64(u.lastUsed))
		if err := b.Put(key, nv); err != nil {
			return err
		}
	}
	return nil
}

// sweepExpired deletes the tickets expired at now.
func sweepExpired(tx *bolt.Tx, now time.Time) error {
	b := tx.Bucket(ticketsBucket)
	var expired [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if exp, ok := expires(v); !ok || !now.Before(exp) {
			expired = append(expired, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range expired {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
