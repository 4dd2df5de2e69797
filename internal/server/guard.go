package server

import (
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openqps/openqps/internal/metrics"
)

// guard wraps a listener's handler with what every request gets around
// openqps's own handling: a deadline for its body, refusal of request
// shapes a reverse proxy must never pass on, recovery from a panic in the
// handler (logged with its stack; the client gets a plain 500), and the
// request metrics and API audit record once it is answered.
type guard struct {
	next http.Handler
	log  *slog.Logger
	// listener names the listener in logs ("front end", "trusted API").
	listener string
	// bodyTimeout bounds reading a request body; 0 is no bound.
	bodyTimeout time.Duration
	// frontend enables the checks for the browser-facing listener.
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
	upgrade := isUpgradeRequest(r)
	sw := newStatusWriter(w)
	defer g.done(sw, r, start, upgrade)
	defer g.recover(sw, r)
	if g.frontend {
		if msg, detail := refusedShape(r); msg != "" {
			g.refuse(sw, r, http.StatusBadRequest, msg, detail)
			return
		}
	}
	if g.bodyTimeout > 0 && r.ContentLength != 0 && !upgrade {
		// Trickling a body is the slowloris of bodies: after the
		// deadline, reads fail and the handler answers or gives up.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(g.bodyTimeout))
	}
	if upgrade && g.metrics != nil {
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

// refusedShape returns why a front-end request is refused outright, or
// "".
func refusedShape(r *http.Request) (msg, detail string) {
	if !strings.HasPrefix(r.RequestURI, "/") {
		// Absolute-form ("GET http://other/ HTTP/1.1") is for forward
		// proxies; accepting it would let the client pick the Host the
		// back end sees. "*" and authority-form (CONNECT) are no
		// resources of a back end either.
		return "invalid request target", "send the path only (GET /hub/ HTTP/1.1); openqps is not a forward proxy"
	}
	if isUpgradeRequest(r) && !strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket") {
		// Only websockets are tunnelled; an h2c or other upgrade
		// would open a tunnel to the back end that bypasses every
		// later check (h2c smuggling).
		return "upgrade not allowed", fmt.Sprintf("only websocket upgrades are proxied, not %q", r.Header.Get("Upgrade"))
	}
	return "", ""
}

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
	writeRefusal(w, r, http.StatusInternalServerError, "internal error", "openqps failed to handle this request; the error is in its log")
}

func (g *guard) refuse(w http.ResponseWriter, r *http.Request, status int, msg, detail string) {
	target, _, _ := strings.Cut(r.RequestURI, "?") // the query may hold a ticket
	g.log.Warn("request rejected", "event", "frontend.rejected", "listener", g.listener, "status", status,
		"method", r.Method, "target", target, "error", msg, "detail", detail, "remote", r.RemoteAddr)
	w.Header().Set("Connection", "close")
	writeRefusal(w, r, status, msg, detail)
}

var refusalPage = template.Must(template.New("refusal").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Status}} {{.Error}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;color:#222}h1{font-size:1.4em}</style>
</head><body><h1>{{.Status}} — {{.Error}}</h1><p>{{.Detail}}</p></body></html>
`))

// writeRefusal answers as the front end and API do: a small HTML page
// for browsers, JSON {"error","detail"} for everything else.
func writeRefusal(w http.ResponseWriter, r *http.Request, status int, msg, detail string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		refusalPage.Execute(w, struct {
			Status        int
			Error, Detail string
		}{status, msg, detail})
		return
	}
	body, _ := json.Marshal(struct {
		Error  string `json:"error"`
		Detail string `json:"detail"`
	}{msg, detail})
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func isUpgradeRequest(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header["Connection"] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return true
			}
		}
	}
	return false
}
