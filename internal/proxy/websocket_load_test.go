package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// TestWebsocketCountsInBackendLoadUntilItCloses: the handler returns once
// a websocket's tunnel runs, but least_requests must still see the open
// websocket (a Qlik engine session is one) until it closes.
func TestWebsocketCountsInBackendLoadUntilItCloses(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
		rw.Flush()
		io.Copy(io.Discard, rw) // until openqps closes its side
	}))
	defer backend.Close()
	cfg, err := config.Parse([]byte("store: {type: memory}\nvirtual_proxies:\n  - prefix: vp\n    load_balancing: least_requests\n    backends: [\"" + backend.URL + "\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	store := session.NewMemory()
	defer store.Close()
	id := session.NewID()
	if err := store.Add(context.Background(), session.Session{Prefix: "vp", ID: id, UserDirectory: "D", UserID: "u", Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{APIPort: 4243})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	defer front.Close()
	node := p.routes.Load().byPrefix["vp"].pool.nodes[0]

	conn, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /vp/app/x HTTP/1.1\r\nHost: front\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: X-Qlik-Session-vp-HTTP="+id+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %s", resp.Status)
	}
	if n := node.inflight.Load(); n != 1 {
		t.Fatalf("back end load with the websocket open = %d, want 1", n)
	}

	conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for node.inflight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("back end load 5 s after the websocket closed = %d, want 0", node.inflight.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
