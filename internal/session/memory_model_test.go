package session_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/storetest"
)

// The memory store packs sessions into arenas, chains colliding hashes and
// shares attribute lists; the model below is the obvious map it must
// behave exactly like. Both are driven by one stream of bytes: random in
// TestMemoryMatchesModel, chosen by the fuzzer in FuzzMemory.

// model keeps sessions, expired ones included until a sweep removes them,
// as the store does.
type model struct {
	sessions map[[2]string]session.Session
}

func (md *model) live(k [2]string, now time.Time) (session.Session, bool) {
	s, ok := md.sessions[k]
	if !ok || s.Expired(now) {
		return session.Session{}, false
	}
	return s, true
}

func (md *model) select_(now time.Time, keep func(session.Session) bool) []session.Session {
	var out []session.Session
	for _, s := range md.sessions {
		if !s.Expired(now) && keep(s) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b session.Session) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// opReader hands out small numbers from the byte stream; zeros once it
// is used up.
type opReader struct{ b []byte }

func (r *opReader) n(k int) int {
	if len(r.b) == 0 {
		return 0
	}
	v := int(r.b[0]) % k
	r.b = r.b[1:]
	return v
}

var (
	modelPrefixes = []string{"", "vp", "other"}
	modelIDs      = []string{"s1", "s2", "s3", "s4", "s5", "s6", "aa051074-13a1-4f2a-842b-a64aa4d21001", ""}
	modelDirs     = []string{"CORP", "corp", "Ünïcode", ""}
	modelUsers    = []string{"alice", "ALICE", "bob", "émile", "a\x00b"}
	modelAttrs    = [][]session.Attribute{
		nil,
		{},
		{{Key: "Group", Value: "Sales"}, {Key: "Group", Value: "Europe"}},
		{{Key: "Group", Value: "Sales"}},
		{{Key: "email", Value: "a@example.com"}},
		{{Key: "", Value: ""}, {Key: "Group", Value: "Sales"}},
	}
	modelTimeouts = []time.Duration{0, time.Minute, 5 * time.Minute}
)

// runModel applies the operations encoded in ops to a store and the model
// and fails at the first difference.
func runModel(t *testing.T, ops []byte, opts ...session.Option) {
	clock := storetest.NewClock(start)
	m := session.NewMemory(append(opts, session.WithClock(clock.Now))...)
	defer m.Close()
	ctx := context.Background()
	events := m.Watch(ctx)
	md := &model{sessions: make(map[[2]string]session.Session)}
	r := &opReader{b: ops}

	for step := 0; len(r.b) > 0; step++ {
		now := clock.Now()
		prefix := modelPrefixes[r.n(len(modelPrefixes))]
		id := modelIDs[r.n(len(modelIDs))]
		k := [2]string{prefix, id}
		var want []session.Event
		var what string
		switch r.n(9) {
		case 0:
			s := session.Session{
				Prefix: prefix, ID: id,
				UserDirectory: modelDirs[r.n(len(modelDirs))], UserID: modelUsers[r.n(len(modelUsers))],
				Attributes: modelAttrs[r.n(len(modelAttrs))],
				Timeout:    modelTimeouts[r.n(len(modelTimeouts))],
			}
			if r.n(4) == 0 {
				// Unique values, to fill the shared attribute lists.
				s.Attributes = []session.Attribute{{Key: "n", Value: fmt.Sprint(step)}}
			}
			what = fmt.Sprintf("Add(%+v)", s)
			err := m.Add(ctx, s)
			if _, ok := md.live(k, now); ok {
				wantErr(t, what, err, session.ErrExists)
				break
			}
			if err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
			if old, ok := md.sessions[k]; ok {
				want = append(want, event(session.Expired, old))
			}
			s.Created, s.LastUsed = now, now
			if len(s.Attributes) == 0 {
				s.Attributes = nil
			}
			md.sessions[k] = s
		case 1:
			what = fmt.Sprintf("Get(%q, %q)", prefix, id)
			got, err := m.Get(ctx, prefix, id)
			ws, ok := md.live(k, now)
			checkOne(t, step, what, got, err, ws, ok)
		case 2:
			at := now.Add(time.Duration(r.n(3)-1) * time.Minute)
			what = fmt.Sprintf("Touch(%q, %q, %v)", prefix, id, at)
			err := m.Touch(ctx, prefix, id, at)
			s, ok := md.live(k, now)
			if !ok {
				wantErr(t, what, err, session.ErrNotFound)
				break
			}
			if err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
			if at.After(s.LastUsed) {
				s.LastUsed = at
				md.sessions[k] = s
			}
		case 3:
			what = fmt.Sprintf("Delete(%q, %q)", prefix, id)
			got, err := m.Delete(ctx, prefix, id)
			ws, ok := md.live(k, now)
			checkOne(t, step, what, got, err, ws, ok)
			if ok {
				delete(md.sessions, k)
				want = append(want, event(session.Deleted, ws))
			}
		case 4, 5:
			dir, user := modelDirs[r.n(len(modelDirs))], modelUsers[r.n(len(modelUsers))]
			uk := session.UserKey(prefix, dir, user)
			ws := md.select_(now, func(s session.Session) bool {
				return session.UserKey(s.Prefix, s.UserDirectory, s.UserID) == uk
			})
			var got []session.Session
			var err error
			if r.n(2) == 0 {
				what = fmt.Sprintf("ByUser(%q, %q, %q)", prefix, dir, user)
				got, err = m.ByUser(ctx, prefix, dir, user)
			} else {
				what = fmt.Sprintf("DeleteUser(%q, %q, %q)", prefix, dir, user)
				got, err = m.DeleteUser(ctx, prefix, dir, user)
				for _, s := range ws {
					delete(md.sessions, [2]string{s.Prefix, s.ID})
					want = append(want, event(session.LoggedOut, s))
				}
			}
			checkList(t, step, what, got, err, ws)
		case 6:
			what = fmt.Sprintf("List(%q)", prefix)
			got, err := m.List(ctx, prefix)
			checkList(t, step, what, got, err, md.select_(now, func(s session.Session) bool { return s.Prefix == prefix }))
		case 7:
			d := time.Duration(r.n(4)) * time.Minute
			what = fmt.Sprintf("advance %v", d)
			clock.Advance(d)
		case 8:
			what = "Sweep"
			m.Sweep(now)
			for k, s := range md.sessions {
				if s.Expired(now) {
					delete(md.sessions, k)
					want = append(want, event(session.Expired, s))
				}
			}
		}
		checkEvents(t, step, what, events, want)
		if got := m.Len(); got != len(md.sessions) {
			t.Fatalf("step %d: after %s: Len = %d, want %d", step, what, got, len(md.sessions))
		}
	}
}

func event(kind session.EventKind, s session.Session) session.Event {
	return session.Event{Kind: kind, Prefix: s.Prefix, ID: s.ID, UserDirectory: s.UserDirectory, UserID: s.UserID}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func checkOne(t *testing.T, step int, what string, got session.Session, err error, want session.Session, ok bool) {
	t.Helper()
	if !ok {
		wantErr(t, what, err, session.ErrNotFound)
		return
	}
	if err != nil {
		t.Fatalf("step %d: %s: %v", step, what, err)
	}
	if diff := sessionDiff(got, want); diff != "" {
		t.Fatalf("step %d: %s: %s", step, what, diff)
	}
}

func checkList(t *testing.T, step int, what string, got []session.Session, err error, want []session.Session) {
	t.Helper()
	if err != nil {
		t.Fatalf("step %d: %s: %v", step, what, err)
	}
	if len(got) != len(want) {
		t.Fatalf("step %d: %s: %d sessions %v, want %d %v", step, what, len(got), got, len(want), want)
	}
	for i := range got {
		if diff := sessionDiff(got[i], want[i]); diff != "" {
			t.Fatalf("step %d: %s: [%d]: %s", step, what, i, diff)
		}
	}
}

func sessionDiff(got, want session.Session) string {
	same := got.Prefix == want.Prefix && got.ID == want.ID &&
		got.UserDirectory == want.UserDirectory && got.UserID == want.UserID &&
		slices.Equal(got.Attributes, want.Attributes) &&
		got.Created.Equal(want.Created) && got.LastUsed.Equal(want.LastUsed) && got.Timeout == want.Timeout
	if same {
		return ""
	}
	return fmt.Sprintf("got %+v, want %+v", got, want)
}

// checkEvents drains what the store reported for one operation. Events
// of one operation may come in any order.
func checkEvents(t *testing.T, step int, what string, ch <-chan session.Event, want []session.Event) {
	t.Helper()
	var got []session.Event
	for {
		select {
		case ev := <-ch:
			got = append(got, ev)
			continue
		default:
		}
		break
	}
	order := func(a, b session.Event) int {
		return cmp.Or(cmp.Compare(a.Prefix, b.Prefix), cmp.Compare(a.ID, b.ID))
	}
	slices.SortFunc(got, order)
	slices.SortFunc(want, order)
	if !slices.Equal(got, want) {
		t.Fatalf("step %d: %s: events %+v, want %+v", step, what, got, want)
	}
}

// modelStores are the configurations the model runs against: the default,
// and one where nearly every hash collides, attribute lists overflow into
// the arena after two and arenas compact as soon as half is dead.
var modelStores = map[string][]session.Option{
	"default":    nil,
	"collisions": {session.WithHashMask(0x3), session.WithAttributeSetLimit(2), session.WithCompactMin(1)},
}

func TestMemoryMatchesModel(t *testing.T) {
	t.Parallel()
	for name, opts := range modelStores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for seed := range uint64(50) {
				rng := rand.New(rand.NewPCG(seed, 1))
				ops := make([]byte, 4000)
				for i := range ops {
					ops[i] = byte(rng.Uint32())
				}
				t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, ops, opts...) })
			}
		})
	}
}

func FuzzMemory(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 2, 0, 1, 1, 0, 1, 3})
	f.Add([]byte("\x01\x02\x00\x01\x01\x02\x02\x01\x02\x00\x03\x01\x02\x03\x00\x01\x01\x04\x00\x00\x00\x07\x03\x00\x00\x08"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		runModel(t, ops, modelStores["collisions"]...)
	})
}
