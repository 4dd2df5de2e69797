package embedded_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/embedded"
	"github.com/openqps/openqps/internal/session/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock func() time.Time) session.Store {
		return open(t, filepath.Join(t.TempDir(), embedded.FileName), embedded.Options{Now: clock})
	})
}

func open(t testing.TB, path string, o embedded.Options) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func closeStore(t *testing.T, s *embedded.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testSession(now time.Time, user string, timeout time.Duration) session.Session {
	return session.Session{
		Prefix: "sales", ID: session.NewID(), UserDirectory: "DOMAIN", UserID: user,
		Attributes: []session.Attribute{{Key: "Group", Value: "B"}, {Key: "Email", Value: user + "@example.com"}, {Key: "Group", Value: "A"}},
		Created:    now, LastUsed: now, Timeout: timeout,
	}
}

func TestEverythingSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), embedded.FileName)
	clock := storetest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	s := open(t, path, embedded.Options{Now: clock.Now})

	kept := testSession(clock.Now(), "User1", 30*time.Minute)
	forever := testSession(clock.Now(), "User2", 0)
	forever.Prefix = ""
	deleted := testSession(clock.Now(), "User3", 30*time.Minute)
	loggedOut := testSession(clock.Now(), "User4", 30*time.Minute)
	for _, sess := range []session.Session{kept, forever, deleted, loggedOut} {
		if err := s.Add(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Delete(ctx, deleted.Prefix, deleted.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUser(ctx, "sales", "domain", "user4"); err != nil {
		t.Fatal(err)
	}
	ticket := session.Ticket{ID: session.NewTicketID(), Prefix: "sales", UserDirectory: "DOMAIN", UserID: "User1",
		Attributes: []session.Attribute{{Key: "Group", Value: "A"}}, TargetURI: "https://x/sales/hub/", Expires: clock.Now().Add(time.Minute)}
	taken := ticket
	taken.ID = session.NewTicketID()
	for _, err := range []error{s.PutTicket(ctx, ticket), s.PutTicket(ctx, taken)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.TakeTicket(ctx, taken.ID); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)

	s = open(t, path, embedded.Options{Now: clock.Now})
	for _, want := range []session.Session{kept, forever} {
		got, err := s.Get(ctx, want.Prefix, want.ID)
		if err != nil {
			t.Fatalf("after reopen, Get %s: %v", want.UserID, err)
		}
		if got.UserID != want.UserID || !got.Created.Equal(want.Created) || !got.LastUsed.Equal(want.LastUsed) ||
			got.Timeout != want.Timeout || len(got.Attributes) != 3 || got.Attributes[1] != want.Attributes[1] {
			t.Fatalf("after reopen\n got %+v\nwant %+v", got, want)
		}
	}
	for _, gone := range []session.Session{deleted, loggedOut} {
		if _, err := s.Get(ctx, gone.Prefix, gone.ID); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("after reopen, removed session of %s: %v, want ErrNotFound", gone.UserID, err)
		}
	}
	if list, _ := s.ByUser(ctx, "sales", "DOMAIN", "user1"); len(list) != 1 {
		t.Fatalf("after reopen, ByUser: %d sessions, want 1 (the user index is rebuilt)", len(list))
	}
	if got, err := s.TakeTicket(ctx, ticket.ID); err != nil || got.TargetURI != ticket.TargetURI || got.Attributes[0] != ticket.Attributes[0] {
		t.Fatalf("after reopen, TakeTicket: %+v, %v", got, err)
	}
	if _, err := s.TakeTicket(ctx, taken.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("after reopen, a ticket redeemed before: %v, want ErrNotFound", err)
	}
}

func TestWhatExpiredWhileClosedIsDropped(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), embedded.FileName)
	clock := storetest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	s := open(t, path, embedded.Options{Now: clock.Now})
	old := testSession(clock.Now(), "User1", 10*time.Minute)
	if err := s.Add(ctx, old); err != nil {
		t.Fatal(err)
	}
	tk := session.Ticket{ID: session.NewTicketID(), Prefix: "sales", UserID: "User1", Expires: clock.Now().Add(time.Minute)}
	if err := s.PutTicket(ctx, tk); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)

	clock.Advance(11 * time.Minute)
	s = open(t, path, embedded.Options{Now: clock.Now})
	if _, err := s.Get(ctx, old.Prefix, old.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("session that expired while closed: %v, want ErrNotFound", err)
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("%d sessions loaded, want 0", n)
	}
	closeStore(t, s)
	counts := bucketCounts(t, path)
	if counts["sessions"] != 0 || counts["tickets"] != 0 {
		t.Fatalf("expired entries left in the file: %v", counts)
	}
}

func bucketCounts(t *testing.T, path string) map[string]int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	counts := map[string]int{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			counts[string(name)] = b.Stats().KeyN
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

func TestLastUseIsPersisted(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), embedded.FileName)
	clock := storetest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	s := open(t, path, embedded.Options{Now: clock.Now})
	used := testSession(clock.Now(), "User1", 10*time.Minute)
	unused := testSession(clock.Now(), "User2", 10*time.Minute)
	for _, sess := range []session.Session{used, unused} {
		if err := s.Add(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(8 * time.Minute)
	if err := s.Touch(ctx, used.Prefix, used.ID, clock.Now()); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s) // writes the recorded use

	clock.Advance(5 * time.Minute) // 13 minutes after the add, 5 after the use
	s = open(t, path, embedded.Options{Now: clock.Now})
	got, err := s.Get(ctx, used.Prefix, used.ID)
	if err != nil {
		t.Fatalf("used session after reopen: %v", err)
	}
	if want := used.Created.Add(8 * time.Minute); !got.LastUsed.Equal(want) {
		t.Fatalf("LastUsed %v, want %v", got.LastUsed, want)
	}
	if _, err := s.Get(ctx, unused.Prefix, unused.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("unused session after reopen: %v, want ErrNotFound", err)
	}
}

func TestLastUseIsFlushedWhileRunning(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), embedded.FileName)
	s := open(t, path, embedded.Options{FlushInterval: 20 * time.Millisecond})
	sess := testSession(time.Now().Add(-time.Hour), "User1", 2*time.Hour)
	if err := s.Add(ctx, sess); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if err := s.Touch(ctx, sess.Prefix, sess.ID, at); err != nil {
		t.Fatal(err)
	}
	want := at.UnixNano()
	deadline := time.Now().Add(5 * time.Second)
	for storedLastUsed(t, s, sess) != want {
		if time.Now().After(deadline) {
			t.Fatalf("LastUsed not written within 5 s of a Touch")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// storedLastUsed reads a session's LastUsed from the file, through a read
// transaction of the open store's database.
func storedLastUsed(t *testing.T, s *embedded.Store, sess session.Session) int64 {
	t.Helper()
	var last int64
	err := embedded.View(s, func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte("sessions")).Get([]byte(sess.Prefix + "\x00" + sess.ID))
		if len(v) >= 8 {
			last = int64(be64(v))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return last
}

func be64(b []byte) uint64 {
	var n uint64
	for _, c := range b[:8] {
		n = n<<8 | uint64(c)
	}
	return n
}

func TestConcurrentAddsShareACommit(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), embedded.FileName), embedded.Options{})
	// Hold bolt's writer lock so that the adds pile up behind the first
	// commit, as they do behind a slow fsync.
	release := make(chan struct{})
	holding := make(chan struct{})
	go embedded.Update(s, func(*bolt.Tx) error {
		close(holding)
		<-release
		return nil
	})
	<-holding
	before := s.Commits()
	const adds = 64
	var wg sync.WaitGroup
	errs := make(chan error, adds)
	for i := range adds {
		wg.Go(func() {
			errs <- s.Add(ctx, testSession(time.Now(), "User"+string(rune('A'+i%26)), time.Hour))
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Queued() < adds {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d adds queued", s.Queued(), adds)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Commits() - before; n > 3 {
		t.Fatalf("%d concurrent adds took %d commits, want them grouped into at most 3", adds, n)
	}
	if n := s.Len(); n != adds {
		t.Fatalf("%d sessions, want %d", n, adds)
	}
}

func TestLockedFileIsAClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), embedded.FileName)
	open(t, path, embedded.Options{})
	_, err := embedded.Open(path, embedded.Options{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open: %v, want an error naming the file and the lock", err)
	}
}

func TestDamagedFileIsAClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), embedded.FileName)
	garbage := []byte(strings.Repeat("not a bolt file\n", 1024))
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := embedded.Open(path, embedded.Options{})
	wantDamaged(t, err, path)
	if b, _ := os.ReadFile(path); string(b) != string(garbage) {
		t.Fatal("Open changed the damaged file")
	}
}

func TestDamagedRecordIsAClearError(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), embedded.FileName)
	s, err := embedded.Open(path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, testSession(time.Now(), "User1", time.Hour)); err != nil {
		t.Fatal(err)
	}
	err = embedded.Update(s, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("sessions")).Put([]byte("sales\x00broken"), []byte{1, 2, 3})
	})
	if err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	_, err = embedded.Open(path, embedded.Options{})
	wantDamaged(t, err, path)
	if !strings.Contains(err.Error(), "broken") {
		t.Fatalf("error %q does not name the damaged record", err)
	}
}

func wantDamaged(t *testing.T, err error, path string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "damaged") ||
		!strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("Open: %v, want an error naming the file, saying it is damaged and what to do", err)
	}
}

func TestMaxSessions(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), embedded.FileName), embedded.Options{MaxSessions: 2})
	first := testSession(time.Now(), "User1", time.Hour)
	for _, sess := range []session.Session{first, testSession(time.Now(), "User2", time.Hour)} {
		if err := s.Add(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Add(ctx, testSession(time.Now(), "User3", time.Hour))
	if !errors.Is(err, session.ErrFull) {
		t.Fatalf("third Add with MaxSessions 2: %v, want ErrFull", err)
	}
	if _, err := s.Delete(ctx, first.Prefix, first.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, testSession(time.Now(), "User3", time.Hour)); err != nil {
		t.Fatalf("Add after a Delete made room: %v", err)
	}
}

func TestWriteFailureIsUnavailableAndNothingIsKept(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), embedded.FileName), embedded.Options{})
	kept := testSession(time.Now(), "User1", time.Hour)
	if err := s.Add(ctx, kept); err != nil {
		t.Fatal(err)
	}
	if err := embedded.CloseFile(s); err != nil {
		t.Fatal(err)
	}
	lost := testSession(time.Now(), "User2", time.Hour)
	err := s.Add(ctx, lost)
	if !errors.Is(err, session.ErrUnavailable) || !strings.Contains(err.Error(), embedded.FileName) {
		t.Fatalf("Add when the file cannot be written: %v, want ErrUnavailable naming the file", err)
	}
	if _, err := s.Get(ctx, lost.Prefix, lost.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("session whose add failed: %v, want ErrNotFound", err)
	}
	if _, err := s.Delete(ctx, kept.Prefix, kept.ID); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Delete when the file cannot be written: %v, want ErrUnavailable", err)
	}
	tk := session.Ticket{ID: session.NewTicketID(), Expires: time.Now().Add(time.Minute)}
	if err := s.PutTicket(ctx, tk); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("PutTicket when the file cannot be written: %v, want ErrUnavailable", err)
	}
}

// TestFailedRemovalsAreRetried: a Delete or a ticket redemption whose
// write failed is reported, and the store has forgotten the session or
// ticket already; the next commit, once the disk is back, makes the
// removal too, so a restart does not bring either back. A session added
// again under the same id after the failed Delete is kept.
func TestFailedRemovalsAreRetried(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), embedded.FileName)
	s := open(t, path, embedded.Options{})
	old := testSession(time.Now(), "User1", time.Hour)
	other := testSession(time.Now(), "User2", time.Hour)
	tk := session.Ticket{ID: session.NewTicketID(), Prefix: "sales", UserDirectory: "DOMAIN", UserID: "User3", Expires: time.Now().Add(time.Minute)}
	for _, add := range []session.Session{old, other} {
		if err := s.Add(ctx, add); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutTicket(ctx, tk); err != nil {
		t.Fatal(err)
	}

	if err := embedded.CloseFile(s); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, old.Prefix, old.ID); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Delete when the file cannot be written: %v, want ErrUnavailable", err)
	}
	if _, err := s.Delete(ctx, other.Prefix, other.ID); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Delete when the file cannot be written: %v, want ErrUnavailable", err)
	}
	if _, err := s.TakeTicket(ctx, tk.ID); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("TakeTicket when the file cannot be written: %v, want ErrUnavailable", err)
	}
	if err := embedded.ReopenFile(s); err != nil {
		t.Fatal(err)
	}
	again := testSession(time.Now(), "User1Again", time.Hour)
	again.ID = old.ID
	if err := s.Add(ctx, again); err != nil { // commits the removals before it
		t.Fatalf("Add once the file can be written again: %v", err)
	}
	closeStore(t, s)

	s = open(t, path, embedded.Options{})
	if got, err := s.Get(ctx, old.Prefix, old.ID); err != nil || got.UserID != "User1Again" {
		t.Errorf("after a restart, the id deleted then added again holds %q, %v; want the new session (User1Again)", got.UserID, err)
	}
	if got, err := s.Get(ctx, other.Prefix, other.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("after a restart, the session whose Delete failed is back (%s, %v); want ErrNotFound", got.UserID, err)
	}
	if _, err := s.TakeTicket(ctx, tk.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("after a restart, the ticket whose redemption failed can be redeemed again (%v); want ErrNotFound", err)
	}
}

func TestLastUseOfManySessionsIsFlushedInChunks(t *testing.T) {
	embedded.SetUsedChunk(10)
	t.Cleanup(func() { embedded.SetUsedChunk(10_000) })
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), embedded.FileName)
	clock := storetest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	s := open(t, path, embedded.Options{Now: clock.Now})
	var all []session.Session
	for i := range 25 {
		sess := testSession(clock.Now(), "User"+strconv.Itoa(i), 10*time.Minute)
		if err := s.Add(ctx, sess); err != nil {
			t.Fatal(err)
		}
		all = append(all, sess)
	}
	clock.Advance(8 * time.Minute)
	for _, sess := range all {
		if err := s.Touch(ctx, sess.Prefix, sess.ID, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Commits()
	closeStore(t, s)
	if n := s.Commits() - before; n < 3 {
		t.Fatalf("25 use times written in %d commits, want chunks of 10 (3 or more)", n)
	}
	clock.Advance(5 * time.Minute)
	s = open(t, path, embedded.Options{Now: clock.Now})
	for _, sess := range all {
		if _, err := s.Get(ctx, sess.Prefix, sess.ID); err != nil {
			t.Fatalf("session used before the restart: %v", err)
		}
	}
}

func TestTruncatedFileIsAClearError(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), embedded.FileName)
	s := open(t, path, embedded.Options{})
	var wg sync.WaitGroup
	for w := range 20 { // concurrent adds share commits: a quicker fill
		wg.Go(func() {
			for i := range 100 {
				if err := s.Add(ctx, testSession(time.Now(), fmt.Sprintf("User%d-%d", w, i), time.Hour)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	closeStore(t, s)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Cut anywhere: the store either says it is damaged, or (the cut
	// took only unused, preallocated space) opens with every session.
	for _, size := range []int64{0, 100, 4096 + 100, 16384, 65536, 131072, 262144, info.Size() / 2, info.Size() - 4096} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cut := filepath.Join(t.TempDir(), embedded.FileName)
		if err := os.WriteFile(cut, b[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := embedded.Open(cut, embedded.Options{})
		if err == nil {
			n := s.Len()
			s.Close()
			if size == 0 || n == 2000 {
				continue // an empty file is a new store
			}
			t.Fatalf("file cut to %d of %d bytes opened with %d of 2000 sessions, want an error", size, info.Size(), n)
		}
		t.Logf("cut to %d bytes: %v", size, err)
		if !strings.Contains(err.Error(), cut) || !strings.Contains(err.Error(), "move it aside") {
			t.Fatalf("file cut to %d bytes: %v, want an error naming the file and what to do", size, err)
		}
	}
}

func TestSecretSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), embedded.FileName)
	s := open(t, path, embedded.Options{})
	first, err := s.Secret(t.Context(), "target-id")
	if err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	s = open(t, path, embedded.Options{})
	again, err := s.Secret(t.Context(), "target-id")
	if err != nil || !bytes.Equal(again, first) {
		t.Fatalf("after reopen Secret = %x, %v; want %x", again, err, first)
	}
}

// TestOldLoginTargetsDoNotStopOpen: a file written by an openqps that
// stored login targets may hold any number of them, some damaged (a crash,
// or writes in flight that passed its cap together): Open ignores them, drops the bucket and
// keeps the sessions.
func TestOldLoginTargetsDoNotStopOpen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), embedded.FileName)
	s := open(t, path, embedded.Options{})
	kept := testSession(time.Now(), "User1", 30*time.Minute)
	if err := s.Add(ctx, kept); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("targets"))
		if err != nil {
			return err
		}
		long := strings.Repeat("x", 64<<10)
		for i := range 100 {
			if err := b.Put([]byte(strconv.Itoa(i)), []byte("\x7f\xff\xff\xff\xff\xff\xff\xff"+long)); err != nil {
				return err
			}
		}
		return b.Put([]byte("damaged"), []byte{1, 2})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s = open(t, path, embedded.Options{})
	if _, err := s.Get(ctx, kept.Prefix, kept.ID); err != nil {
		t.Fatalf("session after opening a file with old targets: %v", err)
	}
	closeStore(t, s)
	if n, ok := bucketCounts(t, path)["targets"]; ok {
		t.Fatalf("the old targets bucket is still there, with %d records", n)
	}
}
