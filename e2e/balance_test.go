package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
)

// pxNode is a back-end node that says who it is, answers /health with a
// status the test sets, and can be stopped and started again on the same
// address.
type pxNode struct {
	Name    string
	addr    string
	health  atomic.Int32
	delay   atomic.Int64 // nanoseconds before each answer
	served  atomic.Int64
	mu      sync.Mutex
	srv     *http.Server
	t       *testing.T
	handler http.Handler
}

func pxNewNode(t *testing.T, name string) *pxNode {
	t.Helper()
	n := &pxNode{Name: name, t: t}
	n.health.Store(http.StatusOK)
	n.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(int(n.health.Load()))
			return
		}
		n.served.Add(1)
		if r.URL.Path == "/block" { // held until the test ends
			<-r.Context().Done()
			return
		}
		if d := time.Duration(n.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "node="+n.Name)
	})
	ln := listenLoopback(t)
	n.addr = ln.Addr().String()
	n.serve(ln)
	t.Cleanup(n.stop)
	return n
}

func (n *pxNode) URL() string { return "http://" + n.addr }

func (n *pxNode) serve(ln net.Listener) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.srv = &http.Server{Handler: n.handler}
	go n.srv.Serve(ln)
}

// stop closes the node: its port refuses connections.
func (n *pxNode) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		n.srv.Close()
		n.srv = nil
	}
}

// restart listens again on the node's address.
func (n *pxNode) restart() {
	ln, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.t.Fatalf("restart %s: %v", n.Name, err)
	}
	n.serve(ln)
}

// pxBackends points the virtual proxy at the nodes.
func pxBackends(vp *config.VirtualProxy, nodes ...*pxNode) {
	vp.Backends, vp.BackendURLs = nil, nil
	for _, n := range nodes {
		u, _ := url.Parse(n.URL())
		vp.Backends = append(vp.Backends, n.URL())
		vp.BackendURLs = append(vp.BackendURLs, u)
	}
}

// pxWho asks the front end which node served a request with the session
// cookie; "" and the status when it was not a node.
func pxWho(t *testing.T, o *openqps, c *http.Client, id string) (string, int) {
	t.Helper()
	resp, body := get(t, c, o.frontURL("/sessionvp/hub/"), "Cookie", "X-Qlik-Session-sessionvp="+id)
	name, ok := strings.CutPrefix(body, "node=")
	if resp.StatusCode != http.StatusOK || !ok {
		return "", resp.StatusCode
	}
	return name, resp.StatusCode
}

// pxUntil polls cond until it holds or five seconds pass.
func pxUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRoundRobinSpreadsRequests(t *testing.T) {
	a, b, c := pxNewNode(t, "a"), pxNewNode(t, "b"), pxNewNode(t, "c")
	o := start(t, func(cfg *config.Config) {
		vp, _ := cfg.VirtualProxy("sessionvp")
		pxBackends(vp, a, b, c)
	})
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	client := o.browser(t)
	counts := map[string]int{}
	for i := 0; i < 30; i++ {
		who, status := pxWho(t, o, client, id)
		if status != http.StatusOK {
			t.Fatalf("request %d: %d", i, status)
		}
		counts[who]++
	}
	if counts["a"] != 10 || counts["b"] != 10 || counts["c"] != 10 {
		t.Errorf("30 requests went %v, want 10 each", counts)
	}
}

// TestStickySessionStaysAndFailsOver: a session stays on one node; when
// that node dies its next request still succeeds on another node, stays
// there, and does not move back when the first node returns.
func TestStickySessionStaysAndFailsOver(t *testing.T) {
	nodes := map[string]*pxNode{"a": pxNewNode(t, "a"), "b": pxNewNode(t, "b"), "c": pxNewNode(t, "c")}
	o := start(t, func(cfg *config.Config) {
		vp, _ := cfg.VirtualProxy("sessionvp")
		vp.Proxying.LoadBalancing = "sticky"
		pxBackends(vp, nodes["a"], nodes["b"], nodes["c"])
	})
	client := o.browser(t)
	homes := map[string]bool{}
	var ids []string
	for s := 0; s < 12; s++ { // all 12 on one of 3 nodes: p < 1e-5
		id := randomHex(16)
		ids = append(ids, id)
		o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
		home, _ := pxWho(t, o, client, id)
		for i := 0; i < 5; i++ {
			if who, status := pxWho(t, o, client, id); who != home {
				t.Fatalf("session %d moved from %q to %q (%d)", s, home, who, status)
			}
		}
		homes[home] = true
	}
	if len(homes) < 2 {
		t.Errorf("12 sessions all live on %v: sticky does not spread", homes)
	}

	id := ids[0]
	home, _ := pxWho(t, o, client, id)
	nodes[home].stop()
	next, status := pxWho(t, o, client, id)
	if status != http.StatusOK || next == home {
		t.Fatalf("after %s died: %q %d, want another node and 200", home, next, status)
	}
	for i := 0; i < 5; i++ {
		if who, _ := pxWho(t, o, client, id); who != next {
			t.Fatalf("after failing over to %s the session moved to %q", next, who)
		}
	}
	nodes[home].restart()
	o.Clock.Advance(time.Minute) // past backend_down_for: the node is back in
	for i := 0; i < 5; i++ {
		if who, _ := pxWho(t, o, client, id); who != next {
			t.Fatalf("when %s returned the session moved from %s to %q", home, next, who)
		}
	}
	// Sessions that never lived on the dead node did not move.
	for _, other := range ids[1:] {
		before, _ := pxWho(t, o, client, other)
		if after, _ := pxWho(t, o, client, other); after != before {
			t.Errorf("session moved from %s to %s", before, after)
		}
	}
}

// TestDeadNodeIsSkipped: a node that refuses connections costs no
// request: each goes to a live node, and the dead one is left out.
func TestDeadNodeIsSkipped(t *testing.T) {
	a, b := pxNewNode(t, "a"), pxNewNode(t, "b")
	b.stop()
	o := start(t, func(cfg *config.Config) {
		vp, _ := cfg.VirtualProxy("sessionvp")
		pxBackends(vp, a, b)
	})
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	client := o.browser(t)
	for i := 0; i < 10; i++ {
		if who, status := pxWho(t, o, client, id); who != "a" {
			t.Fatalf("request %d: %q %d, want node a", i, who, status)
		}
	}
	// A POST with a body is safe to resend after a refused connection too.
	b2 := pxNewNode(t, "b2")
	b2.stop()
	o2 := start(t, func(cfg *config.Config) {
		vp, _ := cfg.VirtualProxy("sessionvp")
		pxBackends(vp, b2, a)
	})
	o2.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	req, _ := http.NewRequest(http.MethodPost, o2.frontURL("/sessionvp/form"), strings.NewReader("x=1"))
	req.Header.Set("Cookie", "X-Qlik-Session-sessionvp="+id)
	if resp, body := do(t, o2.browser(t), req); resp.StatusCode != http.StatusOK || body != "node=a" {
		t.Errorf("POST: %d %q", resp.StatusCode, body)
	}
}

// TestHealthCheckTakesANodeOutAndBringsItBack: a node failing its health
// check gets no requests; when the check passes again it gets its share.
func TestHealthCheckTakesANodeOutAndBringsItBack(t *testing.T) {
	a, b := pxNewNode(t, "a"), pxNewNode(t, "b")
	o := start(t, func(cfg *config.Config) {
		vp, _ := cfg.VirtualProxy("sessionvp")
		pxBackends(vp, a, b)
		vp.Proxying.HealthCheck = config.HealthCheck{Path: "/health", Interval: 20 * time.Millisecond, Timeout: time.Second, ExpectedStatus: 200}
	})
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	client := o.browser(t)

	b.health.Store(http.StatusServiceUnavailable)
	pxUntil(t, "node b is out", func() bool {
		for i := 0; i < 4; i++ {
			if who, _ := pxWho(t, o, client, id); who != "a" {
				return false
			}
		}
		return true
	})
	served := b.served.Load()
	for i := 0; i < 10; i++ {
		pxWho(t, o, client, id)
	}
	if b.served.Load() != served {
		t.Errorf("node b served requests while failing its health check")
	}
	b.health.Store(http.StatusOK)
	pxUntil(t, "node b is back", func() bool {
		who, _ := pxWho(t, o, client, id)
		return who == "b"
	})
}

// TestNoHealthyNodeIs503: when every node is down the answer is an
// immediate 503 with a JSON reason, or a small page for a browser.
func TestNoHealthyNodeIs503(t *testing.T) {
	a := pxNewNode(t, "a")
	a.health.Store(http.StatusInternalServerError)
	o := start(t, func(cfg *config.Config) {
		vp, _ := cfg.VirtualProxy("sessionvp")
		pxBackends(vp, a)
		vp.Proxying.HealthCheck = config.HealthCheck{Path: "/health", Interval: 20 * time.Millisecond, Timeout: time.Second, ExpectedStatus: 200}
	})
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	client := o.browser(t)
	pxUntil(t, "the only node is out", func() bool {
		_, status := pxWho(t, o, client, id)
		return status == http.StatusServiceUnavailable
	})
	resp, body := get(t, client, o.frontURL("/sessionvp/hub/"), "Cookie", "X-Qlik-Session-sessionvp="+id)
	var rej struct{ Error, Detail string }
	if err := json.Unmarshal([]byte(body), &rej); err != nil || rej.Error != "no back end available" || !strings.Contains(rej.Detail, "sessionvp") {
		t.Errorf("503 body %q", body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	resp, body = get(t, client, o.frontURL("/sessionvp/hub/"), "Cookie", "X-Qlik-Session-sessionvp="+id, "Accept", "text/html")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "<html") || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("browser got %d %q", resp.StatusCode, body)
	}
}

// TestSlowNodeTimesOutAndIsLeftOut: a node slower than
// backend_response_timeout costs the request a retry on another node, and
// is then left out.
func TestSlowNodeTimesOutAndIsLeftOut(t *testing.T) {
	fast, slow := pxNewNode(t, "fast"), pxNewNode(t, "slow")
	slow.delay.Store(int64(5 * time.Second))
	o := start(t, func(cfg *config.Config) {
		vp, _ := cfg.VirtualProxy("sessionvp")
		pxBackends(vp, fast, slow)
		vp.Proxying.BackendResponseTimeout = 200 * time.Millisecond
	})
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	client := o.browser(t)
	for i := 0; i < 6; i++ { // without the timeout, the slow node would answer "slow"
		if who, status := pxWho(t, o, client, id); who != "fast" {
			t.Fatalf("request %d: %q %d, want the fast node", i, who, status)
		}
	}
	if slow.served.Load() != 1 {
		t.Errorf("the slow node got %d requests, want 1 (then it is left out)", slow.served.Load())
	}
}

// TestLeastRequestsAvoidsABusyNode: while one node holds a long request,
// new requests go to the idle node.
func TestLeastRequestsAvoidsABusyNode(t *testing.T) {
	a, b := pxNewNode(t, "a"), pxNewNode(t, "b")
	o := start(t, func(cfg *config.Config) {
		vp, _ := cfg.VirtualProxy("sessionvp")
		vp.Proxying.LoadBalancing = "least_requests"
		pxBackends(vp, a, b)
	})
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.frontURL("/sessionvp/block"), nil)
		req.Header.Set("Cookie", "X-Qlik-Session-sessionvp="+id)
		if resp, err := o.browser(t).Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	var busy, idle string
	pxUntil(t, "a node holds the long request", func() bool {
		switch {
		case a.served.Load() == 1:
			busy, idle = "a", "b"
		case b.served.Load() == 1:
			busy, idle = "b", "a"
		}
		return busy != ""
	})
	client := o.browser(t)
	for i := 0; i < 6; i++ {
		if who, status := pxWho(t, o, client, id); who != idle {
			t.Fatalf("request %d went to %q (%d) while %s was busy", i, who, status, busy)
		}
	}
}
