package session

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
)

// PageFilter selects the sessions a page lists. Empty fields match
// everything; UserDirectory and UserID match case-insensitively, as
// ByUser does.
type PageFilter struct {
	// Prefix is the virtual proxy; AnyPrefix lists every virtual proxy's.
	Prefix        string
	AnyPrefix     bool
	UserDirectory string
	UserID        string
}

// match takes the record's bytes, so that a page allocates only for the
// sessions it lists.
func (f *PageFilter) match(prefix, dir, user []byte) bool {
	return (f.AnyPrefix || string(prefix) == f.Prefix) &&
		(f.UserDirectory == "" || bytes.EqualFold(dir, []byte(f.UserDirectory))) &&
		(f.UserID == "" || bytes.EqualFold(user, []byte(f.UserID)))
}

// Pager is implemented by stores that list sessions a page at a time
// without reading them all (the admin console; List is the fallback).
type Pager interface {
	// Page returns about limit live sessions matching f (at most limit
	// from memory; from Redis up to one scan batch more), starting at
	// cursor ("" for the first page), and the cursor of the next page
	// ("" after the last). A page visits a bounded number of sessions,
	// so with a narrow filter it may come back short, or empty, with a
	// next cursor: the walk goes on there. Sessions added or removed
	// while paging may or may not be listed; none is listed twice (on
	// Redis, only while its index is not rehashed, as with every SCAN).
	Page(ctx context.Context, f PageFilter, cursor string, limit int) (list []Session, next string, err error)
}

// maxPageVisit bounds the records one page of the memory store looks at,
// so that a filter that matches few sessions still answers promptly.
const maxPageVisit = 1 << 16

var _ Pager = (*Memory)(nil)

// Page walks the shards' record slots in order: the cursor is a shard and
// a slot, so a page costs the slots it visits, never a scan of the store
// or a sort. Slots keep their place (freed ones are reused), which is
// what makes the cursor stable.
func (m *Memory) Page(_ context.Context, f PageFilter, cursor string, limit int) ([]Session, string, error) {
	shard, slot, err := parsePageCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = 50
	}
	now := m.now().UnixNano()
	var out []Session
	visited := 0
	for ; shard < len(m.shards); shard, slot = shard+1, 0 {
		sh := &m.shards[shard]
		sh.mu.RLock()
		for ; slot < len(sh.records); slot++ {
			if len(out) == limit || visited == maxPageVisit {
				sh.mu.RUnlock()
				return out, fmt.Sprintf("%d.%d", shard, slot), nil
			}
			visited++
			r := &sh.records[slot]
			if r.size == 0 || r.expired(now) {
				continue
			}
			b := sh.bytes(r)
			l := layoutOf(b)
			if f.match(b[l.prefix.start:l.prefix.end], b[l.directory.start:l.directory.end], b[l.userID.start:l.userID.end]) {
				out = append(out, sh.session(uint32(slot)))
			}
		}
		sh.mu.RUnlock()
	}
	return out, "", nil
}

func parsePageCursor(c string) (shard, slot int, err error) {
	if c == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(c, ".")
	if ok {
		shard, err = strconv.Atoi(a)
	}
	if ok && err == nil {
		slot, err = strconv.Atoi(b)
	}
	if !ok || err != nil || shard < 0 || shard >= shardCount || slot < 0 {
		return 0, 0, fmt.Errorf("page cursor %q is not one a page gave", c)
	}
	return shard, slot, nil
}
