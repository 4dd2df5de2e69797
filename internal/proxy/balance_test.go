package proxy

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

func testPool(t *testing.T, policy string, n int) *pool {
	t.Helper()
	c := &config.VirtualProxy{Proxying: config.Proxying{LoadBalancing: policy, BackendDownFor: 10 * time.Second}}
	for i := 0; i < n; i++ {
		u, _ := url.Parse(fmt.Sprintf("http://10.0.0.%d:4747", i+1))
		c.BackendURLs = append(c.BackendURLs, u)
	}
	return newPool(c)
}

func sessionRequest(id string) *request { return &request{session: session.Session{ID: id}} }

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func TestRoundRobinSkipsDownNodes(t *testing.T) {
	p := testPool(t, "round_robin", 3)
	p.failed(p.nodes[1], t0)
	counts := map[int]int{}
	for i := 0; i < 30; i++ {
		_, k := p.pick(sessionRequest("s"), 0, t0)
		counts[k]++
	}
	if counts[1] != 0 || counts[0] != 15 || counts[2] != 15 {
		t.Errorf("picks %v, want 15/0/15", counts)
	}
	// The passive failure ends after backend_down_for.
	if _, k := p.pick(sessionRequest("s"), 1<<0|1<<2, t0.Add(10*time.Second)); k != 1 {
		t.Errorf("node 1 not back after down_for: picked %d", k)
	}
}

func TestNoHealthyNodeIsNil(t *testing.T) {
	p := testPool(t, "least_requests", 2)
	p.failed(p.nodes[0], t0)
	p.failed(p.nodes[1], t0)
	if n, _ := p.pick(sessionRequest("s"), 0, t0); n != nil {
		t.Errorf("picked %v with every node down", n.url)
	}
	one := testPool(t, "round_robin", 1)
	if n, _ := one.pick(sessionRequest("s"), 1, t0); n != nil {
		t.Error("a single node already tried was picked again")
	}
}

func TestActiveChecksKeepAFailedNodeOutUntilTheyPass(t *testing.T) {
	p := testPool(t, "round_robin", 2)
	p.active = true
	p.failed(p.nodes[0], t0)
	if p.nodes[0].healthy(t0.Add(24 * time.Hour).UnixNano()) {
		t.Error("with active checks a failed node came back by itself")
	}
}

func TestLeastRequestsPicksTheIdlestNode(t *testing.T) {
	p := testPool(t, "least_requests", 3)
	p.nodes[0].inflight.Store(5)
	p.nodes[1].inflight.Store(2)
	p.nodes[2].inflight.Store(7)
	for i := 0; i < 5; i++ {
		if _, k := p.pick(sessionRequest("s"), 0, t0); k != 1 {
			t.Fatalf("picked %d, want the idlest node 1", k)
		}
	}
	p.nodes[1].inflight.Store(9)
	if _, k := p.pick(sessionRequest("s"), 0, t0); k != 0 {
		t.Errorf("picked %d, want node 0", k)
	}
}

func TestStickySessionStaysThenFailsOverAndStays(t *testing.T) {
	p := testPool(t, "sticky", 4)
	homes := map[int]int{}
	for s := 0; s < 400; s++ {
		id := fmt.Sprintf("session-%d", s)
		_, home := p.pick(sessionRequest(id), 0, t0)
		for i := 0; i < 3; i++ {
			if _, k := p.pick(sessionRequest(id), 0, t0); k != home {
				t.Fatalf("%s moved from %d to %d", id, home, k)
			}
		}
		homes[home]++
	}
	for i := 0; i < 4; i++ {
		if homes[i] < 50 {
			t.Errorf("node %d is home to %d of 400 sessions; the hash does not spread: %v", i, homes[i], homes)
		}
	}

	rq := sessionRequest("session-7")
	_, home := p.pick(rq, 0, t0)
	p.failed(p.nodes[home], t0)
	_, next := p.pick(rq, 0, t0)
	if next == home {
		t.Fatal("stayed on a down node")
	}
	// The home node returns; the session stays where its state now is.
	if _, k := p.pick(rq, 0, t0.Add(time.Minute)); k != next {
		t.Errorf("moved back to %d after failing over to %d", k, next)
	}
	p.policy.(*sticky).forget(rq.session.ID)
	if _, k := p.pick(rq, 0, t0.Add(time.Minute)); k != home {
		t.Errorf("after the pin was forgotten the session went to %d, want its home %d", k, home)
	}
}

func TestRendezvousOnlyMovesTheRemovedNodesSessions(t *testing.T) {
	four, three := testPool(t, "sticky", 4), testPool(t, "sticky", 3)
	moved := 0
	for s := 0; s < 300; s++ {
		id := fmt.Sprintf("s%d", s)
		_, a := four.pick(sessionRequest(id), 0, t0)
		_, b := three.pick(sessionRequest(id), 0, t0)
		if a != 3 && a != b {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d sessions moved although their node stayed", moved)
	}
}

// TestStickyDoesNotPinAnonymousSessions: anonymous sessions end without
// an event that would forget their pins, so a failover pins none of them
// (strangers could otherwise grow the pins without bound).
func TestStickyDoesNotPinAnonymousSessions(t *testing.T) {
	p := testPool(t, "sticky", 4)
	rq := sessionRequest("anonymous-session")
	rq.anonymous = true
	_, home := p.pick(rq, 0, t0)
	p.failed(p.nodes[home], t0)
	if _, next := p.pick(rq, 0, t0); next == home {
		t.Fatal("stayed on a down node")
	}
	if n := len(p.policy.(*sticky).pins); n != 0 {
		t.Errorf("%d pins for an anonymous session", n)
	}
}
