// Package httperror writes openqps's answer to a refused request: the
// JSON body {"error", "detail"} — a short name of what went wrong and what
// the caller should do about it — or, for a browser, a small HTML page
// saying the same. The front end, the guard around both listeners, the
// trusted API and its reload call all answer with it, so a client parses
// every refusal of openqps the same way.
//
// It writes only: each caller logs its refusal once, with the fields it
// knows (virtual proxy, caller, redacted path).
package httperror

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// Body is the JSON body of every refusal.
type Body struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

// ContentTypeJSON is the Content-Type of a JSON refusal.
const ContentTypeJSON = "application/json; charset=utf-8"

var page = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Status}} {{.Error}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;color:#222}h1{font-size:1.4em}</style>
</head><body><h1>{{.Status}} — {{.Error}}</h1><p>{{.Detail}}</p>{{if .Retry}}
<p><a href="{{.Retry}}">Try again</a></p>{{end}}</body></html>
`))

// Write answers r with status: a browser (Accept containing text/html)
// gets the HTML page, everything else the JSON body. Neither is cached.
// msg and detail must not carry internal addresses or stack traces.
func Write(w http.ResponseWriter, r *http.Request, status int, msg, detail string) {
	WriteRetry(w, r, status, msg, detail, "")
}

// WriteRetry is Write with a place to try again: retry, when not empty, is
// a URL the caller checked (one of the proxy's own) that the HTML page
// links to, for a login that failed at an identity provider. The JSON
// body is Write's; its detail says where to go.
func WriteRetry(w http.ResponseWriter, r *http.Request, status int, msg, detail, retry string) {
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		WriteJSON(w, status, msg, detail)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	page.Execute(w, struct {
		Status               int
		Error, Detail, Retry string
	}{status, msg, detail, retry})
}

// WriteJSON answers with status and the JSON body, compact, with
// Content-Length and without a trailing newline, in one write: clients
// such as qlik-auth parse only the first chunk they receive. It is not
// cached. The trusted API, whose callers are programs, answers only this.
func WriteJSON(w http.ResponseWriter, status int, msg, detail string) {
	body, _ := json.Marshal(Body{Error: msg, Detail: detail}) // two strings: cannot fail
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", ContentTypeJSON)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
