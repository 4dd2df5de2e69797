package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// benchProxy is a front end with one session in front of a real loopback
// back end.
func benchProxy(b *testing.B, sessions int) (*Proxy, *http.Request) {
	b.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	b.Cleanup(backend.Close)
	cfg, err := config.Parse([]byte(`
store: {type: memory}
virtual_proxies:
  - prefix: vp
    backends: ["` + backend.URL + `"]
`))
	if err != nil {
		b.Fatal(err)
	}
	store := session.NewMemory()
	b.Cleanup(func() { store.Close() })
	ctx := context.Background()
	for i := 0; i < sessions; i++ {
		store.Add(ctx, session.Session{Prefix: "vp", ID: session.NewID(), UserDirectory: "D", UserID: "u", Timeout: 1 << 40})
	}
	id := "0123456789abcdef0123456789abcdef"
	err = store.Add(ctx, session.Session{Prefix: "vp", ID: id, UserDirectory: "DOMAIN", UserID: "User1",
		Attributes: []session.Attribute{{Key: "Group", Value: "Sales"}, {Key: "Group", Value: "Ops"}}, Timeout: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{APIPort: 4243})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://proxy.example/vp/hub/page?x=1", nil)
	req.RequestURI = "/vp/hub/page?x=1"                             // origin form, as a client sends it; the absolute form is refused
	req.Header.Set("Cookie", "other=1; X-Qlik-Session-vp-HTTP="+id) // plain HTTP: QPS's -HTTP cookie
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	req.RemoteAddr = "127.0.0.1:40000"
	return p, req
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkAuthenticatedGet is the hot path: cookie → session → forward
// to a loopback back end, without the client-side network.
func BenchmarkAuthenticatedGet(b *testing.B) {
	p, req := benchProxy(b, 0)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			p.ServeHTTP(w, req)
		}
	})
}

// BenchmarkAuthenticate isolates openqps's own work: path check, routing,
// cookie parse, session lookup and touch.
func BenchmarkAuthenticate(b *testing.B) {
	p, req := benchProxy(b, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rq := &request{w: &discardWriter{h: http.Header{}}, r: req, routes: p.routes.Load(), scheme: "http"}
		clean, _ := cleanPath(req.URL.Path, req.URL.EscapedPath())
		_, rest := splitPrefix(clean)
		rq.vp, rq.path = rq.routes.byPrefix["vp"], rest
		if v, err := p.authenticate(rq); err != nil || v.kind != identified {
			b.Fatal("not authenticated")
		}
	}
}

var _ = net.Dial
