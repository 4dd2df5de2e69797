package proxy

import (
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openqps/openqps/internal/config"
)

// node is one back end of a virtual proxy: its address, how many requests
// it is serving now and whether it is healthy. All fields are safe for
// concurrent use.
type node struct {
	url *url.URL
	key string // scheme://host, its pool of idle connections
	// inflight counts requests being forwarded to the node (least_requests).
	inflight atomic.Int64
	// down is set when the node failed (passively or an active check);
	// retryAt is when a passively failed node may be tried again
	// (math.MaxInt64 while an active check says it is down).
	down    atomic.Bool
	retryAt atomic.Int64 // unix nanoseconds
}

// healthy reports whether the node may get requests at now (unix ns).
func (n *node) healthy(now int64) bool {
	return !n.down.Load() || now >= n.retryAt.Load()
}

// nodeSet is a set of node indexes, at most config.MaxBackends.
type nodeSet uint64

func (s nodeSet) has(i int) bool { return s&(1<<uint(i)) != 0 }

// policy chooses a healthy node for a request that has not tried the
// nodes in tried. It returns -1 when no node is left.
type policy interface {
	pick(pool *pool, rq *request, tried nodeSet, now int64) int
}

// pool is the back ends of one virtual proxy and its policy.
type pool struct {
	nodes  []*node
	policy policy
	// downFor is how long a passively failed node is left out; active
	// reports whether health checks bring nodes back instead.
	downFor time.Duration
	active  bool
}

func newPool(cfg *config.VirtualProxy) *pool {
	p := &pool{downFor: cfg.Proxying.BackendDownFor, active: cfg.Proxying.HealthCheck.Path != ""}
	for _, u := range cfg.BackendURLs {
		p.nodes = append(p.nodes, &node{url: u, key: u.Scheme + "://" + u.Host})
	}
	switch cfg.Proxying.LoadBalancing {
	case "least_requests":
		p.policy = &leastRequests{}
	case "sticky":
		p.policy = &sticky{pins: map[string]*node{}}
	default:
		p.policy = &roundRobin{}
	}
	return p
}

// inherit copies the health of the nodes old (may be nil) has in common
// with p.
func (p *pool) inherit(old *virtualProxy) {
	if old == nil {
		return
	}
	for _, n := range p.nodes {
		for _, o := range old.pool.nodes {
			if o.url.String() == n.url.String() {
				n.retryAt.Store(o.retryAt.Load())
				n.down.Store(o.down.Load())
			}
		}
	}
}

// pick chooses the node for a request and returns it with its index;
// nil when none is healthy.
func (p *pool) pick(rq *request, tried nodeSet, now time.Time) (*node, int) {
	if len(p.nodes) == 1 {
		if tried == 0 && p.nodes[0].healthy(now.UnixNano()) {
			return p.nodes[0], 0
		}
		return nil, -1
	}
	i := p.policy.pick(p, rq, tried, now.UnixNano())
	if i < 0 {
		return nil, -1
	}
	return p.nodes[i], i
}

// outFor says in the log how long a failed node stays out.
func (p *pool) outFor() string {
	if p.active {
		return "until a health check passes"
	}
	return p.downFor.String()
}

// failed takes a node out after it refused a connection or timed out:
// for downFor, or until an active check passes.
func (p *pool) failed(n *node, now time.Time) {
	retry := now.Add(p.downFor).UnixNano()
	if p.active {
		retry = maxTime
	}
	n.retryAt.Store(retry)
	n.down.Store(true)
}

const maxTime = 1<<63 - 1

// usable reports whether node i may take the request.
func (p *pool) usable(i int, tried nodeSet, now int64) bool {
	return !tried.has(i) && p.nodes[i].healthy(now)
}

// roundRobin hands requests to the healthy nodes in turn.
type roundRobin struct{ next atomic.Uint64 }

func (r *roundRobin) pick(p *pool, _ *request, tried nodeSet, now int64) int {
	// Each skipped node advances the counter too; otherwise the node after
	// a down one would get its turns as well as its own.
	n := uint64(len(p.nodes))
	for k := uint64(0); k < n; k++ {
		if i := int(r.next.Add(1) % n); p.usable(i, tried, now) {
			return i
		}
	}
	return -1
}

// leastRequests picks the healthy node serving the fewest requests now.
// Ties go round robin, so an idle pool still spreads its load.
type leastRequests struct{ next atomic.Uint64 }

func (l *leastRequests) pick(p *pool, _ *request, tried nodeSet, now int64) int {
	n := len(p.nodes)
	start := int(l.next.Add(1) % uint64(n))
	best, bestLoad := -1, int64(0)
	for k := 0; k < n; k++ {
		i := (start + k) % n
		if !p.usable(i, tried, now) {
			continue
		}
		if load := p.nodes[i].inflight.Load(); best < 0 || load < bestLoad {
			best, bestLoad = i, load
		}
	}
	return best
}

// sticky keeps each session on one node while that node is healthy, as
// stateful engines need. The node is chosen by rendezvous hashing of the
// session id, so every openqps in front of the same back ends agrees on it
// without sharing state, and removing one node moves only its sessions.
// When a session's node fails, the session moves to its next node and is
// pinned there, so it does not move back (and lose its state again) when
// the first node returns. Pins end with their session.
type sticky struct {
	mu   sync.Mutex
	pins map[string]*node // session id → node it failed over to
}

func (s *sticky) pick(p *pool, rq *request, tried nodeSet, now int64) int {
	id := rq.session.ID
	if id == "" { // not a session (cannot happen on the forward path)
		return (&roundRobin{}).pick(p, rq, tried, now)
	}
	s.mu.Lock()
	pinned := s.pins[id]
	s.mu.Unlock()
	first, best := -1, -1
	var firstScore, bestScore uint64
	for i, n := range p.nodes {
		if pinned == n && p.usable(i, tried, now) {
			return i
		}
		score := rendezvous(id, n.url.Host)
		if first < 0 || score > firstScore {
			first, firstScore = i, score
		}
		if p.usable(i, tried, now) && (best < 0 || score > bestScore) {
			best, bestScore = i, score
		}
	}
	// Anonymous sessions are not pinned: they end without an event
	// (anonymous.go), so their pins would never be forgotten.
	if best >= 0 && (best != first || pinned != nil) && !rq.anonymous {
		s.mu.Lock()
		if best == first {
			delete(s.pins, id)
		} else {
			s.pins[id] = p.nodes[best]
		}
		s.mu.Unlock()
	}
	return best
}

// forget drops a session's pin when the session ends.
func (s *sticky) forget(id string) {
	s.mu.Lock()
	delete(s.pins, id)
	s.mu.Unlock()
}

// rendezvous is the FNV-1a hash of a session id and a node's address: the
// node with the highest score for a session is its home.
func rendezvous(id, node string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * prime
	}
	h = (h ^ 0xff) * prime // separator
	for i := 0; i < len(node); i++ {
		h = (h ^ uint64(node[i])) * prime
	}
	// FNV's low bits mix poorly for short keys; finish like splitmix64.
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return h
}
