package proxy

import (
	"encoding/json"
	"html/template"
	"strconv"
	"strings"
)

// rejection is the JSON body of every front-end rejection.
type rejection struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Status}} {{.Error}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;color:#222}h1{font-size:1.4em}</style>
</head><body><h1>{{.Status}} — {{.Error}}</h1><p>{{.Detail}}</p></body></html>
`))

// reject answers a request that openqps refuses, and logs it once. A
// browser (Accept: text/html) gets a small HTML page, everything else
// JSON; neither carries internal addresses or stack traces.
func (p *Proxy) reject(rq *request, status int, msg, detail string) {
	prefix := ""
	if rq.vp != nil {
		prefix = rq.vp.cfg.Prefix
	}
	p.log.Warn("request rejected", "event", "frontend.rejected", "status", status, "vp", prefix,
		"method", rq.r.Method, "path", rq.r.URL.Path, "error", msg, "detail", detail, "remote", rq.r.RemoteAddr)
	h := rq.w.Header()
	h.Set("Cache-Control", "no-store")
	if strings.Contains(rq.r.Header.Get("Accept"), "text/html") {
		h.Set("Content-Type", "text/html; charset=utf-8")
		rq.w.WriteHeader(status)
		errorPage.Execute(rq.w, struct {
			Status        int
			Error, Detail string
		}{status, msg, detail})
		return
	}
	body, _ := json.Marshal(rejection{Error: msg, Detail: detail})
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	rq.w.WriteHeader(status)
	rq.w.Write(body)
}
