package session

import (
	"slices"
	"sync"
)

// userIndex finds a user's sessions for the user API. Like the session
// shards it holds no pointer per entry: it maps a 64-bit hash of the
// UserKey to a chain of nodes, each naming one session by the hash of its
// (prefix, id). Hashes may collide both ways, so callers look each session
// up and keep only those whose user matches; the index only narrows the
// search to a handful of candidates.
type userIndex struct {
	shards [shardCount]userShard
}

type userShard struct {
	mu    sync.Mutex
	heads map[uint64]uint32 // user hash → first node
	nodes []userNode
	free  uint32 // 1 + the first free node; 0: none
}

type userNode struct {
	session uint64 // hash of the session's (prefix, id)
	next    uint32 // 1 + the next node of the same user hash (or free node); 0: none
}

func (x *userIndex) init() {
	for i := range x.shards {
		x.shards[i].heads = make(map[uint64]uint32)
	}
}

func (x *userIndex) shard(user uint64) *userShard {
	return &x.shards[user>>(64-shardBits)]
}

// add records that a session with hash session belongs to the user with
// hash user. A user holding two sessions of one hash gets two nodes.
func (x *userIndex) add(user, session uint64) {
	sh := x.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var i uint32
	if sh.free != 0 {
		i = sh.free - 1
		sh.free = sh.nodes[i].next
	} else {
		i = uint32(len(sh.nodes))
		sh.nodes = append(sh.nodes, userNode{})
	}
	n := userNode{session: session}
	if head, ok := sh.heads[user]; ok {
		n.next = head + 1
	}
	sh.nodes[i] = n
	sh.heads[user] = i
}

// remove undoes one add of the same pair.
func (x *userIndex) remove(user, session uint64) {
	sh := x.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.heads[user]
	if !ok {
		return
	}
	var prev *userNode
	for sh.nodes[i].session != session {
		if sh.nodes[i].next == 0 {
			return
		}
		prev = &sh.nodes[i]
		i = sh.nodes[i].next - 1
	}
	n := &sh.nodes[i]
	switch {
	case prev != nil:
		prev.next = n.next
	case n.next == 0:
		delete(sh.heads, user)
	default:
		sh.heads[user] = n.next - 1
	}
	*n = userNode{next: sh.free}
	sh.free = i + 1
}

// sessions returns the session hashes recorded for the user hash, each
// once, so the caller can visit the session shards without holding the
// user shard.
func (x *userIndex) sessions(user uint64) []uint64 {
	sh := x.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var out []uint64
	i, ok := sh.heads[user]
	for ok {
		n := sh.nodes[i]
		if !slices.Contains(out, n.session) {
			out = append(out, n.session)
		}
		i, ok = n.next-1, n.next != 0
	}
	return out
}
