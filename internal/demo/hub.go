// Package demo is the built-in demo world that makes `openqps serve` useful
// with no configuration: a "hub" back end that shows who reached it, and
// a login module that logs anyone in through the session API or the
// ticket API, as a company's own module would.
package demo

import (
	"html/template"
	"net/http"
	"strings"
)

var hubPage = template.Must(template.New("hub").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>openqps demo hub</title>
<style>body{font-family:system-ui,sans-serif;max-width:46em;margin:3em auto;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
code{background:#f4f4f4;padding:0 .2em}</style></head><body>
<h1>openqps demo hub</h1>
<p>You reached the back end through openqps as:</p>
<table>
<tr><th>User directory</th><td id="user-directory">{{.UserDirectory}}</td></tr>
<tr><th>User id</th><td id="user-id">{{.UserID}}</td></tr>
<tr><th>Virtual proxy</th><td id="virtual-proxy">{{if .Prefix}}{{.Prefix}}{{else}}(default){{end}}</td></tr>
<tr><th>Attributes</th><td id="attributes">{{range .Attributes}}<code>{{.}}</code> {{end}}</td></tr>
<tr><th>Path seen by the back end</th><td><code>{{.Path}}</code></td></tr>
</table>
<p><button id="logout" onclick="logout()">Log out</button></p>
<p>X-Qlik-User: <code>{{.RawUser}}</code></p>
<script>
function logout(){fetch("{{.LogoutPath}}",{method:"DELETE",credentials:"same-origin"}).then(function(){location.reload()})}
</script>
</body></html>
`))

// Hub is the demo back end. It shows the identity headers openqps
// attached to the request; it trusts them because only openqps can
// reach it (it listens on 127.0.0.1).
func Hub() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := parseQlikUser(r.Header.Get("X-Qlik-User"))
		prefix := r.Header.Get("X-Qlik-Virtual-Proxy-Prefix")
		logout := "/qps/user"
		if prefix != "" {
			logout = "/" + prefix + "/qps/user"
		}
		var attrs []string
		for _, f := range strings.Split(r.Header.Get("X-Qlik-Security"), ";") {
			f = strings.TrimSpace(f)
			if f == "" || strings.HasPrefix(f, "SecureRequest=") || strings.HasPrefix(f, "Context=") {
				continue
			}
			attrs = append(attrs, f)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		hubPage.Execute(w, map[string]any{
			"UserDirectory": user["UserDirectory"], "UserID": user["UserId"], "Prefix": prefix,
			"Attributes": attrs, "Path": r.URL.RequestURI(), "RawUser": r.Header.Get("X-Qlik-User"),
			"LogoutPath": logout,
		})
	})
}

// parseQlikUser reads "UserDirectory=<d>; UserId=<u>" (values
// percent-encoded, spaces after ";" optional).
func parseQlikUser(v string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			continue
		}
		if u, err := unescape(val); err == nil {
			val = u
		}
		out[k] = val
	}
	return out
}
