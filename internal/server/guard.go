package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/openqps/openqps/internal/httperror"
	"github.com/openqps/openqps/internal/metrics"
	"github.com/openqps/openqps/internal/proxy"
)

// guard wraps a listener's handler with what every request of either
// listener gets around openqps's own handling: a deadline for its body,
// recovery from a panic in the handler (logged with its stack; the client
// gets a plain 500), and the request metrics and API audit record once it
// is answered. What a listener refuses is its handler's: the front end's
// refusals are all in internal/proxy (reject), the trusted API's in
// internal/qpsapi.
type guard struct {
	next http.Handler
	log  *slog.Logger
	// listener names the listener in logs ("front end", "trusted API").
	listener string
	// bodyTimeout bounds reading a request body; 0 is no bound.
	bodyTimeout time.Duration
	// frontend: the browser-facing listener, counted by path in the
	// metrics.
	frontend bool
	// metrics counts answers by status and their latency; may be nil.
	metrics *metrics.Registry
	// audit, when set, gets one api.call record per request with the
	// caller's certificate subject (the trusted API).
	audit *slog.Logger
	// logPath redacts the secrets in a path for the audit record
	// (qpsapi.Server.LogPath).
	logPath func(string) string
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	upgrade := proxy.IsUpgrade(r)
	sw := newStatusWriter(w)
	defer g.done(sw, r, start, upgrade)
	defer g.recover(sw, r)
	if g.bodyTimeout > 0 && r.ContentLength != 0 && !upgrade {
		// Trickling a body is the slowloris of bodies: after the
		// deadline, reads fail and the handler answers or gives up.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(g.bodyTimeout))
	}
	// Only websockets are counted as such: the front end refuses other
	// upgrades (h2c) as it refuses any other request shape.
	if upgrade && g.metrics != nil && strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket") {
		g.metrics.WebsocketOpened()
		defer g.metrics.WebsocketClosed()
	}
	g.next.ServeHTTP(sw, r)
}

// done counts and audits a finished request.
func (g *guard) done(sw *statusWriter, r *http.Request, start time.Time, upgrade bool) {
	status := sw.status
	tunnelled := upgrade && (status == 0 || status == http.StatusSwitchingProtocols)
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing: net/http answers 200
	}
	elapsed := time.Since(start)
	switch {
	case g.metrics == nil:
	case tunnelled:
		// A websocket lasts as long as the user stays: its duration
		// is no request latency. Refused upgrades are counted below.
	case g.frontend:
		g.metrics.Frontend(r.URL.Path).Observe(status, elapsed)
	case !g.frontend:
		g.metrics.API().Observe(status, elapsed)
	}
	// Health probes (a successful GET /qps/alive) are no audit events.
	if g.audit != nil && !(status == http.StatusOK && strings.HasSuffix(r.URL.Path, "/alive")) {
		caller := ""
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			caller = r.TLS.VerifiedChains[0][0].Subject.String()
		}
		g.audit.Info("api call", "event", "api.call", "caller", caller, "method", r.Method,
			"path", g.logPath(r.URL.Path), "status", status, "ms", elapsed.Milliseconds(), "remote", r.RemoteAddr)
	}
	sw.release()
}

// statusWriter remembers the status a handler answered. Unwrap lets
// http.ResponseController reach the connection (flushing, deadlines,
// websocket hijacking). statusWriters are pooled: the front end makes one
// per request.
type statusWriter struct {
	http.ResponseWriter
	status int
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

func newStatusWriter(w http.ResponseWriter) *statusWriter {
	sw := statusWriters.Get().(*statusWriter)
	sw.ResponseWriter, sw.status = w, 0
	return sw
}

func (w *statusWriter) release() {
	w.ResponseWriter = nil
	statusWriters.Put(w)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes on, for handlers that type-assert http.Flusher.
func (w *statusWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// recover turns a panic in the handler into a logged error and, when
// nothing was written yet, a 500. http.ErrAbortHandler is how a handler
// cuts a response short on purpose; it is passed on.
func (g *guard) recover(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	path := r.URL.Path
	if g.logPath != nil {
		path = g.logPath(path) // an API path may hold a session id
	}
	g.log.Error("handler panicked", "event", "panic", "listener", g.listener, "method", r.Method,
		"path", path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	// If the handler had already written the status line, this write is
	// ignored by net/http and the client sees a truncated answer.
	httperror.Write(w, r, http.StatusInternalServerError, "internal error", "openqps failed to handle this request; the error is in its log")
}
