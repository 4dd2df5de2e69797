package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// frontEnd serves a Proxy for one virtual proxy "vp" in front of h, with
// one session whose cookie it returns.
func frontEnd(t *testing.T, h http.Handler) (url, cookie string) {
	t.Helper()
	backend := httptest.NewServer(h)
	t.Cleanup(backend.Close)
	return frontEndTo(t, backend.URL)
}

func frontEndTo(t *testing.T, backendURL string) (url, cookie string) {
	t.Helper()
	cfg, err := config.Parse([]byte("store: {type: memory}\nvirtual_proxies:\n  - prefix: vp\n    backends: [\"" + backendURL + "\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	store := session.NewMemory()
	t.Cleanup(func() { store.Close() })
	id := session.NewID()
	if err := store.Add(context.Background(), session.Session{Prefix: "vp", ID: id, UserDirectory: "D", UserID: "u", Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{APIPort: 4243})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return front.URL, "X-Qlik-Session-vp-HTTP=" + id // plain HTTP: QPS's -HTTP cookie
}

func TestForwardDropsHopByHopHeadersBothWays(t *testing.T) {
	var seen http.Header
	url, cookie := frontEnd(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		w.Header().Set("Connection", "X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "1")
		w.Header().Set("X-Kept", "yes")
	}))
	req, _ := http.NewRequest("GET", url+"/vp/x", nil)
	req.Header.Set("Cookie", cookie+"; theme=dark")
	req.Header.Set("Connection", "X-Client-Hop")
	req.Header.Set("X-Client-Hop", "1")
	req.Header.Set("Forwarded", "for=10.0.0.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen.Get("X-Client-Hop") != "" || seen.Get("Forwarded") != "" {
		t.Errorf("hop-by-hop or forwarding headers reached the back end: %v", seen)
	}
	if seen.Get("Cookie") != "theme=dark" {
		t.Errorf("Cookie %q", seen.Get("Cookie"))
	}
	if resp.Header.Get("X-Secret-Hop") != "" || resp.Header.Get("X-Kept") != "yes" {
		t.Errorf("response headers %v", resp.Header)
	}
}

func TestForwardStreamsEventsAsTheyCome(t *testing.T) {
	next := make(chan struct{})
	url, cookie := frontEnd(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next // the second event waits until the client saw the first
		io.WriteString(w, "data: two\n\n")
	}))
	req, _ := http.NewRequest("GET", url+"/vp/events", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != "data: one\n" {
		t.Fatalf("first event %q", line)
	}
	close(next)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: two") {
		t.Errorf("second event %q", rest)
	}
}

func TestForwardPassesBodiesAndTrailers(t *testing.T) {
	url, cookie := frontEnd(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "echo:"+string(b))
		w.Header().Set("X-Checksum", "abc")
	}))
	req, _ := http.NewRequest("POST", url+"/vp/upload", strings.NewReader(strings.Repeat("x", 100000)))
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(body) != 100005 || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("body %d bytes, trailer %v", len(body), resp.Trailer)
	}
}

func TestForwardToDeadBackendIs502(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // its port now refuses connections
	url, cookie := frontEndTo(t, dead.URL)
	req, _ := http.NewRequest("GET", url+"/vp/x", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "back end unavailable") {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

func TestSpoofableHeaders(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Qlik-User": true, "x-qlik-security": true, "X_Qlik_User": true, "X-Qlik_Virtual-Proxy-Prefix": true,
		"X-Forwarded-For": true, "X_Forwarded_Host": true, "Forwarded": true, "X-Real-Ip": true,
		"X-Qlik": false, "Accept": false, "X-Qlikuser": false, "X-Requested-With": false,
	} {
		if got := spoofable(name); got != want {
			t.Errorf("spoofable(%q) = %v, want %v", name, got, want)
		}
	}
}
