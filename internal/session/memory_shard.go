package session

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The memory store keeps a million sessions without a pointer per session,
// so the garbage collector has nothing to scan in them: each shard holds
// fixed-size records in one slice, the strings of all its sessions in one
// byte arena, and an index from a 64-bit hash of (prefix, id) to a record.
// Sessions whose hashes collide are chained through their records, and
// every lookup compares the stored prefix and id, so a collision costs a
// comparison, never a wrong answer.
//
// That takes less than half the memory of a map of pointers to structs,
// and a GC cycle has next to nothing to mark, however many sessions there
// are (bench/scale measures both; bench/README.md has the figures).

// record is one session's fixed-size part. A free slot has size 0 (a live
// record always holds at least its four length bytes).
type record struct {
	lastUsed atomic.Int64 // unix nanoseconds; Touch slides it under a read lock
	created  int64        // unix nanoseconds
	timeout  time.Duration
	hash     uint64 // hash of (prefix, id): the index key
	off      uint32 // where the record's bytes start in the arena
	size     uint32 // how many bytes it has there
	next     uint32 // 1 + the next record with the same hash, or the next free slot; 0: none
	attrs    uint32 // noAttributes, inlineAttributes, or 1 + an attribute set of the shard
}

const (
	noAttributes     = 0
	inlineAttributes = math.MaxUint32 // encoded in the arena after the strings
)

// expired reports whether the session has timed out at now (unix nanoseconds).
func (r *record) expired(now int64) bool {
	timeout := int64(r.timeout)
	if timeout <= 0 {
		return false
	}
	last := r.lastUsed.Load()
	if last > math.MaxInt64-timeout {
		return false // ends after the year 2262: never, for us
	}
	return now >= last+timeout
}

// touch moves lastUsed forward to at; an earlier at leaves it unchanged.
// It returns the lastUsed it replaced, or at when it changed nothing.
func (r *record) touch(at int64) int64 {
	for {
		last := r.lastUsed.Load()
		if at <= last {
			return at
		}
		if r.lastUsed.CompareAndSwap(last, at) {
			return last
		}
	}
}

// A record's bytes are its prefix, id, user directory and user id, each
// as a uvarint length and the bytes, then, for inlineAttributes, the
// encoded attribute list (see appendAttributes).
func appendRecord(b []byte, s *Session) []byte {
	b = appendString(b, s.Prefix)
	b = appendString(b, s.ID)
	b = appendString(b, s.UserDirectory)
	return appendString(b, s.UserID)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendAttributes encodes an attribute list as a uvarint count and each
// key and value as a string. The encoding is also the attribute set's key.
func appendAttributes(b []byte, attrs []Attribute) []byte {
	b = binary.AppendUvarint(b, uint64(len(attrs)))
	for _, a := range attrs {
		b = appendString(b, a.Key)
		b = appendString(b, a.Value)
	}
	return b
}

// span is the [start, end) of a field within a record's bytes.
type span struct{ start, end int }

// nextField returns the length-prefixed field at pos. The bytes were
// written by appendString, so they are well formed.
func nextField(b []byte, pos int) span {
	n, w := binary.Uvarint(b[pos:])
	return span{pos + w, pos + w + int(n)}
}

// layout locates the fields of a record's bytes.
type layout struct {
	prefix, id, directory, userID span
}

func layoutOf(b []byte) layout {
	var l layout
	l.prefix = nextField(b, 0)
	l.id = nextField(b, l.prefix.end)
	l.directory = nextField(b, l.id.end)
	l.userID = nextField(b, l.directory.end)
	return l
}

// decodeAttributes reads the list that appendAttributes wrote at pos in b.
// str holds the same bytes as b; its substrings become the keys and values.
func decodeAttributes(b []byte, str string, pos int) []Attribute {
	n, w := binary.Uvarint(b[pos:])
	at := pos + w
	attrs := make([]Attribute, n)
	for i := range attrs {
		k := nextField(b, at)
		v := nextField(b, k.end)
		attrs[i] = Attribute{Key: str[k.start:k.end], Value: str[v.start:v.end]}
		at = v.end
	}
	return attrs
}

// sessionShard holds the sessions whose hash falls in it.
type sessionShard struct {
	mu      sync.RWMutex
	index   map[uint64]uint32 // hash → first record with that hash
	records []record
	free    uint32 // 1 + the first free slot; 0: none
	live    int    // records in use, including expired ones not yet swept
	arena   []byte
	dead    int // arena bytes no live record refers to
	// compactMin keeps small shards from compacting over a few bytes.
	compactMin int
	sets       attributeSets
}

const defaultCompactMin = 4 << 10

func (sh *sessionShard) init(cfg *memoryConfig) {
	sh.index = make(map[uint64]uint32)
	sh.compactMin = cfg.compactMin
	sh.sets.init(cfg.attributeSets)
}

func (sh *sessionShard) bytes(r *record) []byte {
	return sh.arena[r.off : r.off+r.size]
}

// find returns the record holding (prefix, id) under hash h, live or
// expired. The caller holds sh.mu.
func (sh *sessionShard) find(h uint64, prefix, id string) (uint32, bool) {
	i, ok := sh.index[h]
	if !ok {
		return 0, false
	}
	for {
		r := &sh.records[i]
		if r.hash == h {
			b := sh.bytes(r)
			p := nextField(b, 0)
			if string(b[p.start:p.end]) == prefix {
				f := nextField(b, p.end)
				if string(b[f.start:f.end]) == id {
					return i, true
				}
			}
		}
		if r.next == 0 {
			return 0, false
		}
		i = r.next - 1
	}
}

// chain calls fn with every record whose hash is h. The caller holds sh.mu.
func (sh *sessionShard) chain(h uint64, fn func(i uint32)) {
	i, ok := sh.index[h]
	for ok {
		next := sh.records[i].next
		fn(i)
		i, ok = next-1, next != 0
	}
}

// insert stores s under hash h. attrs is the encoded attribute list. The
// caller holds sh.mu for writing and has checked that (prefix, id) is free.
func (sh *sessionShard) insert(h uint64, s *Session, attrs []byte) uint32 {
	var i uint32
	if sh.free != 0 {
		i = sh.free - 1
		sh.free = sh.records[i].next
	} else {
		i = uint32(len(sh.records))
		sh.records = append(sh.records, record{})
	}
	r := &sh.records[i]
	r.hash = h
	r.created = s.Created.UnixNano()
	r.lastUsed.Store(s.LastUsed.UnixNano())
	r.timeout = s.Timeout
	r.attrs = noAttributes
	if len(s.Attributes) > 0 {
		r.attrs = sh.sets.acquire(attrs, s.Attributes)
	}
	off := len(sh.arena)
	sh.arena = appendRecord(sh.arena, s)
	if r.attrs == inlineAttributes {
		sh.arena = append(sh.arena, attrs...)
	}
	r.off, r.size = uint32(off), uint32(len(sh.arena)-off)
	r.next = 0
	if head, ok := sh.index[h]; ok {
		r.next = head + 1
	}
	sh.index[h] = i
	sh.live++
	return i
}

// remove frees record i. The caller holds sh.mu for writing.
func (sh *sessionShard) remove(i uint32) {
	r := &sh.records[i]
	if head := sh.index[r.hash]; head == i {
		if r.next == 0 {
			delete(sh.index, r.hash)
		} else {
			sh.index[r.hash] = r.next - 1
		}
	} else {
		prev := &sh.records[head]
		for prev.next-1 != i {
			prev = &sh.records[prev.next-1]
		}
		prev.next = r.next
	}
	if r.attrs != noAttributes && r.attrs != inlineAttributes {
		sh.sets.release(r.attrs)
	}
	sh.dead += int(r.size)
	*r = record{next: sh.free}
	sh.free = i + 1
	sh.live--
	if sh.dead >= sh.compactMin && sh.dead*2 > len(sh.arena) {
		sh.compact()
	}
}

// compact copies the live records' bytes into a fresh arena, so deleted
// sessions give their memory back. It runs when half the arena is dead,
// which keeps its cost a constant per deleted byte.
func (sh *sessionShard) compact() {
	arena := make([]byte, 0, len(sh.arena)-sh.dead)
	for i := range sh.records {
		r := &sh.records[i]
		if r.size == 0 {
			continue
		}
		off := len(arena)
		arena = append(arena, sh.bytes(r)...)
		r.off = uint32(off)
	}
	sh.arena, sh.dead = arena, 0
}

// session returns record i as callers see it. Its strings share one
// allocation. The caller holds sh.mu.
func (sh *sessionShard) session(i uint32) Session {
	r := &sh.records[i]
	b := sh.bytes(r)
	l := layoutOf(b)
	str := string(b)
	s := r.snapshot()
	s.Prefix = str[l.prefix.start:l.prefix.end]
	s.ID = str[l.id.start:l.id.end]
	s.UserDirectory = str[l.directory.start:l.directory.end]
	s.UserID = str[l.userID.start:l.userID.end]
	s.Attributes = sh.attributes(r, b, str, l.userID.end)
	return s
}

// get returns record i for Get, which already has the prefix and id
// strings: only the user directory and id are copied out of the arena,
// in one allocation. The caller holds sh.mu.
func (sh *sessionShard) get(i uint32, prefix, id string) Session {
	r := &sh.records[i]
	if r.attrs == inlineAttributes {
		return sh.session(i)
	}
	b := sh.bytes(r)
	l := layoutOf(b)
	str := string(b[l.directory.start:l.userID.end])
	s := r.snapshot()
	s.Prefix, s.ID = prefix, id
	s.UserDirectory = str[:l.directory.end-l.directory.start]
	s.UserID = str[l.userID.start-l.directory.start:]
	s.Attributes = sh.attributes(r, nil, "", 0)
	return s
}

// attributes returns the record's attribute list: the shared list of its
// attribute set, or one decoded from b at pos (str holds the same bytes).
func (sh *sessionShard) attributes(r *record, b []byte, str string, pos int) []Attribute {
	switch r.attrs {
	case noAttributes:
		return nil
	case inlineAttributes:
		return decodeAttributes(b, str, pos)
	}
	return sh.sets.lists[r.attrs-1]
}

// snapshot returns the record's times; the strings are the caller's part.
func (r *record) snapshot() Session {
	return Session{
		Created:  time.Unix(0, r.created).UTC(),
		LastUsed: time.Unix(0, r.lastUsed.Load()).UTC(),
		Timeout:  r.timeout,
	}
}

// attributeSets shares attribute lists between the sessions of a shard:
// thousands of sessions carry the same few groups, so a record holds a
// number instead of its own copy. Sets are counted and freed with their
// last session. The table is bounded, so lists that do not repeat cannot
// grow it without end; once it is full, new lists are kept in the arena.
type attributeSets struct {
	ids   map[string]uint32 // encoded list → set
	lists [][]Attribute
	keys  []string // encoded list of each set, to free its ids entry
	refs  []uint32 // sessions holding each set; 0: free
	free  []uint32
	max   int
}

const defaultAttributeSets = 1024 // per shard

func (as *attributeSets) init(max int) {
	as.ids = make(map[string]uint32)
	as.max = max
}

// acquire returns 1 + the set holding the list encoded as enc, adding it
// when absent, or inlineAttributes when the table is full.
func (as *attributeSets) acquire(enc []byte, attrs []Attribute) uint32 {
	if id, ok := as.ids[string(enc)]; ok {
		as.refs[id]++
		return id + 1
	}
	var id uint32
	switch {
	case len(as.free) > 0:
		id = as.free[len(as.free)-1]
		as.free = as.free[:len(as.free)-1]
	case len(as.lists) < as.max:
		id = uint32(len(as.lists))
		as.lists, as.keys, as.refs = append(as.lists, nil), append(as.keys, ""), append(as.refs, 0)
	default:
		return inlineAttributes
	}
	key := string(enc)
	as.ids[key] = id
	as.lists[id] = internAttributes(attrs)
	as.keys[id] = key
	as.refs[id] = 1
	return id + 1
}

// release drops one session's hold on set ref (1 + its number).
func (as *attributeSets) release(ref uint32) {
	id := ref - 1
	as.refs[id]--
	if as.refs[id] > 0 {
		return
	}
	delete(as.ids, as.keys[id])
	as.lists[id], as.keys[id] = nil, ""
	as.free = append(as.free, id)
}
