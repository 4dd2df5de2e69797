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
	"time"
)

// guard wraps a listener's handler with what every request gets before
// openqps looks at it: a deadline for its body, refusal of request shapes
// a reverse proxy must never pass on, and recovery from a panic in the
// handler (logged with its stack; the client gets a plain 500).
type guard struct {
	next http.Handler
	log  *slog.Logger
	// listener names the listener in logs ("front end", "trusted API").
	listener string
	// bodyTimeout bounds reading a request body; 0 is no bound.
	bodyTimeout time.Duration
	// frontend enables the checks for the browser-facing listener.
	frontend bool
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer g.recover(w, r)
	if g.frontend {
		if msg, detail := refusedShape(r); msg != "" {
			g.refuse(w, r, http.StatusBadRequest, msg, detail)
			return
		}
	}
	if g.bodyTimeout > 0 && r.ContentLength != 0 && !isUpgradeRequest(r) {
		// Trickling a body is the slowloris of bodies: after the
		// deadline, reads fail and the handler answers or gives up.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(g.bodyTimeout))
	}
	g.next.ServeHTTP(w, r)
}

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
	g.log.Error("handler panicked", "event", "panic", "listener", g.listener, "method", r.Method,
		"path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	// If the handler had already written the status line, this write is
	// ignored by net/http and the client sees a truncated answer.
	writeRefusal(w, r, http.StatusInternalServerError, "internal error", "openqps failed to handle this request; the error is in its log")
}

func (g *guard) refuse(w http.ResponseWriter, r *http.Request, status int, msg, detail string) {
	g.log.Warn("request rejected", "event", "frontend.rejected", "listener", g.listener, "status", status,
		"method", r.Method, "target", r.RequestURI, "error", msg, "detail", detail, "remote", r.RemoteAddr)
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
