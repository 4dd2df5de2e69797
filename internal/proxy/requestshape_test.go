package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/openqps/openqps/internal/session"
)

// TestRequestShapesAreRefusedBeforeTheBackEnd: an absolute-form target
// or an upgrade to anything but a websocket is refused with 400 even with
// a valid session, and the back end never sees it; a websocket upgrade
// passes.
func TestRequestShapesAreRefusedBeforeTheBackEnd(t *testing.T) {
	var reached atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	store := session.NewMemory()
	t.Cleanup(func() { store.Close() })
	p, _ := refusalFrontEnd(t, backend.URL, plainVP, store)
	cookie := "X-Qlik-Session-vp-HTTP=" + addSession(t, store, "vp")
	for name, r := range map[string]*http.Request{
		"absolute form": func() *http.Request {
			r := clientRequest(http.MethodGet, "/vp/hub/", "Cookie", cookie)
			r.RequestURI = "http://evil.example/vp/hub/"
			return r
		}(),
		"h2c upgrade": clientRequest(http.MethodGet, "/vp/hub/", "Cookie", cookie, "Upgrade", "h2c", "Connection", "Upgrade, HTTP2-Settings"),
	} {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		if w.Code != http.StatusBadRequest || reached.Load() != 0 || w.Header().Get("Connection") != "close" {
			t.Errorf("%s: %d, Connection %q, back end reached %d times", name, w.Code, w.Header().Get("Connection"), reached.Load())
		}
	}
	ws := clientRequest(http.MethodGet, "/vp/app/", "Upgrade", "websocket", "Connection", "keep-alive, Upgrade")
	if msg, detail := refusedShape(ws); msg != "" {
		t.Errorf("a websocket upgrade was refused: %s: %s", msg, detail)
	}
}
