// Package embedded is the durable session store openqps serves with by
// default: a session.Memory whose every change is also written to one
// bbolt file in the data directory.
//
// Durability: Add, Delete, DeleteUser, PutTicket, TakeTicket and the first
// Secret of a name return only once the change is on disk (fsync'd), so whatever the API
// acknowledged survives a crash or kill -9. Concurrent changes are group
// committed: they share one transaction and one fsync. Lookups (Get,
// Touch, ByUser, List) never touch the disk. Touch is not written per
// request: a session's LastUsed is recorded when it enters a new interval
// of FlushInterval and flushed every FlushInterval, so after a crash a
// session may expire up to two FlushIntervals early.
package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/openqps/openqps/internal/session"
)

// FileName is the store's file inside the data directory.
const FileName = "sessions.db"

// DefaultFlushInterval is how often last-use times are written when
// Options.FlushInterval is not set.
const DefaultFlushInterval = 5 * time.Second

// Options configure a Store. The zero value is usable.
type Options struct {
	// Now is the clock expiry is decided by; nil is time.Now.
	Now func() time.Time
	// SweepInterval is how often expired entries are removed;
	// 0 is session.DefaultSweepInterval.
	SweepInterval time.Duration
	// FlushInterval is the precision of persisted last-use times and how
	// often they are written; 0 is DefaultFlushInterval.
	FlushInterval time.Duration
	// MaxSessions caps the sessions held (Add returns session.ErrFull);
	// 0 is no cap.
	MaxSessions int
}

// Store is the embedded durable store. It serves every method of
// session.Memory from memory and writes changes through its journal; all
// methods are safe for concurrent use.
type Store struct {
	*session.Memory
	db      *bolt.DB
	journal *journal
	path    string
	secrets sync.Map // name → []byte, read from the file once

	closeOnce sync.Once
	closeErr  error
	stop      chan struct{} // closed by Close to end the flusher
	flushed   chan struct{} // closed by the flusher when it has ended
}

var _ session.Store = (*Store)(nil)

// Open opens (or creates) the store file at path and loads every live
// session and ticket into memory. Entries that expired while the store
// was closed are dropped from the file, and so are the login targets an
// older openqps kept (whatever their state: nothing reads them now). A file that is locked by
// another process, damaged or not a store at all is an error that names
// it and says what to do; Open never starts over with an empty store on
// its own.
func Open(path string, o Options) (*Store, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("session store: create the directory of %s: %w", path, err)
	}
	info, statErr := os.Stat(path)
	existed := statErr == nil && info.Size() > 0
	db, err := openBolt(path)
	if err != nil {
		return nil, openError(path, existed, err)
	}
	s := &Store{db: db, path: path, stop: make(chan struct{}), flushed: make(chan struct{})}
	s.journal = newJournal(db, path)
	s.journal.loading.Store(true)
	s.Memory = session.NewMemory(
		session.WithClock(o.Now),
		session.WithSweepInterval(o.SweepInterval),
		session.WithJournal(s.journal, o.FlushInterval),
		session.WithMaxSessions(o.MaxSessions),
	)
	if err := s.load(o.Now()); err != nil {
		s.Memory.Close()
		s.journal.close()
		db.Close()
		return nil, err
	}
	s.journal.loading.Store(false)
	go s.flushEvery(o.FlushInterval, o.Now)
	return s, nil
}

// openBolt opens the file. bolt panics on some damage, and reading a
// page past the end of a truncated file faults (SIGBUS) in bolt's memory
// map, which would end the process: both become an error.
func openBolt(path string) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
}

// openError explains why bolt could not open the file; existed says
// whether the file held data before.
func openError(path string, existed bool, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("session store %s is locked by another process (is another openqps running with the same data_dir?): stop it or use another data_dir", path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return damaged(path, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("session store %s cannot be opened: %w; give the openqps user read and write access to it", path, err)
	case existed:
		return damaged(path, err) // e.g. a truncated file
	}
	return fmt.Errorf("open session store %s: %w", path, err)
}

func damaged(path string, err error) error {
	return fmt.Errorf("session store %s is damaged or not an openqps session store (%v): "+
		"move it aside to start with no sessions (everyone logs in again), or restore it from a backup", path, err)
}

// load fills the memory store from the file, in one read transaction,
// then removes from the file what has expired. bolt panics on some kinds
// of damage, and a truncated file faults in its memory map (see
// openBolt); that is reported as a damaged file, not a crash.
func (s *Store) load(now time.Time) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = damaged(s.path, fmt.Errorf("%v", r))
		}
	}()
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		switch v := meta.Get(formatKey); {
		case v == nil:
			if err := meta.Put(formatKey, []byte{format}); err != nil {
				return err
			}
		case len(v) != 1 || v[0] != format:
			return fmt.Errorf("record format %v, this openqps reads format %d", v, format)
		}
		for _, name := range [][]byte{sessionsBucket, ticketsBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(oldTargetsBucket); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return damaged(s.path, err)
	}
	var expired [][]byte
	err = s.db.View(func(tx *bolt.Tx) error {
		ctx := context.Background()
		var err error
		expired, err = s.loadSessions(tx.Bucket(sessionsBucket), now)
		if err != nil {
			return err
		}
		return tx.Bucket(ticketsBucket).ForEach(func(k, v []byte) error {
			t, err := decodeTicket(k, v)
			if err != nil {
				return fmt.Errorf("ticket: %w", err)
			}
			if !now.Before(t.Expires) {
				return nil // swept below
			}
			return s.Memory.PutTicket(ctx, t)
		})
	})
	if errors.Is(err, session.ErrFull) {
		return fmt.Errorf("session store %s holds more sessions than store.max_sessions allows: raise the limit", s.path)
	}
	if err != nil {
		return damaged(s.path, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(sessionsBucket)
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return sweepExpired(tx, now)
	})
}

// loadBatch is how many records the reader hands a loading worker at once.
const loadBatch = 1024

// loadSessions decodes the sessions and adds the live ones to memory, on
// every CPU: a million sessions are a few seconds of work for one. It
// returns the keys of the expired ones. The records are read in the
// caller's transaction, which stays open until the workers are done.
func (s *Store) loadSessions(b *bolt.Bucket, now time.Time) (expired [][]byte, err error) {
	type record struct{ k, v []byte }
	batches := make(chan []record, runtime.GOMAXPROCS(0))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	// decode adds a batch's sessions to memory. A fault reading a damaged
	// file's memory map becomes an error here too (see openBolt): these
	// goroutines are not the caller's, whose recover cannot see them.
	decode := func(batch []record) {
		defer func() {
			if r := recover(); r != nil {
				fail(fmt.Errorf("%v", r))
			}
		}()
		for _, r := range batch {
			sess, err := decodeSession(r.k, r.v)
			if err != nil {
				fail(fmt.Errorf("key %q: %w", r.k, err))
				continue
			}
			if sess.Expired(now) {
				k := bytes.Clone(r.k) // before locking: the read may fault
				mu.Lock()
				expired = append(expired, k)
				mu.Unlock()
				continue
			}
			if err := s.Memory.Add(context.Background(), sess); err != nil {
				fail(err)
			}
		}
	}
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			for batch := range batches {
				decode(batch)
			}
		})
	}
	func() {
		// Also when reading panics (damage): the workers must be done
		// before the transaction, and with it the memory map, goes away.
		defer func() {
			close(batches)
			wg.Wait()
		}()
		batch := make([]record, 0, loadBatch)
		b.ForEach(func(k, v []byte) error {
			batch = append(batch, record{k, v})
			if len(batch) == loadBatch {
				batches <- batch
				batch = make([]record, 0, loadBatch)
			}
			return nil
		})
		batches <- batch
	}()
	return expired, first
}

// Secret returns the named secret from the file, making it (at random)
// and writing it there the first time it is asked for, so it survives
// restarts. The first read is a write transaction: of concurrent first
// calls, the later ones find what the first one wrote.
func (s *Store) Secret(_ context.Context, name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("secret: empty name")
	}
	if v, ok := s.secrets.Load(name); ok {
		return v.([]byte), nil
	}
	var key []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(secretsBucket)
		if err != nil {
			return err
		}
		if v := b.Get([]byte(name)); len(v) == session.SecretSize {
			key = bytes.Clone(v)
			return nil
		}
		key = session.NewSecret()
		return b.Put([]byte(name), key)
	})
	if err != nil {
		return nil, fmt.Errorf("secret %q in %s: %v: %w", name, s.path, err, session.ErrUnavailable)
	}
	v, _ := s.secrets.LoadOrStore(name, key)
	return v.([]byte), nil
}

// flushEvery writes recorded use times and sweeps expired tickets from
// the file, until Close.
func (s *Store) flushEvery(interval time.Duration, now func() time.Time) {
	defer close(s.flushed)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			// A failed write is reported to the callers of the changes
			// that share its batch; a lost flush only costs precision.
			_ = s.journal.flushUsed()
			_ = s.journal.sweep(now())
		}
	}
}

// Close writes the recorded use times, waits for queued changes to be
// committed and closes the file. It may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.flushed
		s.Memory.Close() // stops the sweeper, which queues removals
		err := s.journal.flushUsed()
		s.journal.close()
		s.closeErr = errors.Join(err, s.db.Close())
	})
	return s.closeErr
}
