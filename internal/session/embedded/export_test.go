package embedded

import bolt "go.etcd.io/bbolt"

// Commits and Queued expose the journal's counters to the tests.
func (s *Store) Commits() int64 { return s.journal.commits.Load() }
func (s *Store) Queued() int64  { return s.journal.queued.Load() }

// View and Update run transactions on the store's open database.
func View(s *Store, fn func(*bolt.Tx) error) error   { return s.db.View(fn) }
func Update(s *Store, fn func(*bolt.Tx) error) error { return s.db.Update(fn) }

// EncodeSession is the record layout, for tests that write files directly.
var EncodeSession = encodeSession

// CloseFile closes the database under the store, so that writes fail.
func CloseFile(s *Store) error { return s.db.Close() }

// SetUsedChunk changes how many use times one flush transaction writes.
func SetUsedChunk(n int) { usedChunk = n }

// ReopenFile opens the database again after CloseFile, as a disk that
// comes back would: writes succeed again.
func ReopenFile(s *Store) error {
	db, err := openBolt(s.path)
	if err != nil {
		return err
	}
	s.db, s.journal.db = db, db
	return nil
}
