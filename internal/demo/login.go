package demo

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/session"
)

// Paths of the demo login module on the front end; the demo virtual
// proxies name them as their authentication module.
const (
	LoginMount       = "demo-login"
	SessionLoginPath = "/demo-login/session"
	TicketLoginPath  = "/demo-login/ticket"
)

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>openqps demo login</title>
<style>body{font-family:system-ui,sans-serif;max-width:30em;margin:4em auto;color:#222}
label{display:block;margin:.6em 0}input{width:100%;padding:.3em}</style></head><body>
<h1>Demo login ({{.Flow}} API)</h1>
<p>This stands in for your company's login module: it believes anyone, then tells openqps
who you are through the trusted API's {{.Flow}} API.</p>
{{if .Error}}<p style="color:#b00">{{.Error}}</p>{{end}}
<form method="post">
<input type="hidden" name="proxyRestUri" value="{{.ProxyRestURI}}">
<input type="hidden" name="targetId" value="{{.TargetID}}">
<label>User directory <input name="directory" value="DOMAIN"></label>
<label>User id <input name="user" value="User1" autofocus></label>
<label>Groups (comma separated) <input name="groups" value="Sales"></label>
<button type="submit">Log in</button>
</form></body></html>
`))

// LoginModule is the demo login module. Its API client calls openqps's
// trusted API with the exported client certificate, as a login module
// must; CookieName returns the session cookie of a virtual proxy (a real
// session-API module is configured with it).
type LoginModule struct {
	CookieName func(prefix string) (string, bool)
	Log        *slog.Logger
	api        atomic.Pointer[qpsapi.Client] // set by Demo.Connect once the server runs
}

func (m *LoginModule) setAPI(c *qpsapi.Client) { m.api.Store(c) }
func (m *LoginModule) client() *qpsapi.Client  { return m.api.Load() }

// ServeHTTP serves GET (the form) and POST (log in) for both flows.
func (m *LoginModule) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var flow string
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case SessionLoginPath:
		flow = "session"
	case TicketLoginPath:
		flow = "ticket"
	default:
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	data := map[string]string{"Flow": flow, "ProxyRestURI": q.Get("proxyRestUri"), "TargetID": q.Get("targetId")}
	if r.Method == http.MethodPost {
		if m.client() == nil {
			http.Error(w, "openqps is still starting; try again in a moment", http.StatusServiceUnavailable)
			return
		}
		if err := m.login(w, r, flow); err != nil {
			data["Error"] = err.Error()
			data["ProxyRestURI"], data["TargetID"] = r.PostFormValue("proxyRestUri"), r.PostFormValue("targetId")
			w.WriteHeader(http.StatusBadRequest)
		} else {
			return
		}
	} else if data["ProxyRestURI"] == "" {
		data["Error"] = "Missing parameters: open a page behind openqps (e.g. /sessionvp/hub/) and you are sent here with proxyRestUri and targetId."
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	loginPage.Execute(w, data)
}

func (m *LoginModule) login(w http.ResponseWriter, r *http.Request, flow string) error {
	prefix, err := prefixOf(r.PostFormValue("proxyRestUri"))
	if err != nil {
		return err
	}
	req := qpsapi.UserRequest{
		UserDirectory: r.PostFormValue("directory"),
		UserId:        r.PostFormValue("user"),
		TargetId:      r.PostFormValue("targetId"),
	}
	for _, g := range strings.Split(r.PostFormValue("groups"), ",") {
		if g = strings.TrimSpace(g); g != "" {
			req.Attributes = append(req.Attributes, session.Attribute{Key: "Group", Value: g})
		}
	}
	ctx := r.Context()
	if flow == "ticket" {
		return m.ticketLogin(ctx, w, r, prefix, req)
	}
	return m.sessionLogin(ctx, w, r, prefix, req)
}

// sessionLogin is the seed workflow: POST session with a new random id,
// set the virtual proxy's cookie, go to the hub.
func (m *LoginModule) sessionLogin(ctx context.Context, w http.ResponseWriter, r *http.Request, prefix string, req qpsapi.UserRequest) error {
	cookie, ok := m.CookieName(prefix)
	if !ok {
		return fmt.Errorf("unknown virtual proxy %q", prefix)
	}
	req.SessionId = session.NewID()
	req.TargetId = ""
	if _, err := m.client().AddSession(ctx, prefix, req); err != nil {
		return fmt.Errorf("session API: %w", err)
	}
	if r.TLS == nil {
		cookie += "-HTTP" // the front end's plain-HTTP listener, as QPS names it
	}
	http.SetCookie(w, &http.Cookie{Name: cookie, Value: req.SessionId, Path: "/", HttpOnly: true, Secure: r.TLS != nil})
	http.Redirect(w, r, "/"+prefixSlash(prefix)+"hub/", http.StatusFound)
	return nil
}

// ticketLogin is the ticket flow: POST ticket with the targetId, send the
// browser back to TargetUri with the ticket.
func (m *LoginModule) ticketLogin(ctx context.Context, w http.ResponseWriter, r *http.Request, prefix string, req qpsapi.UserRequest) error {
	t, err := m.client().Ticket(ctx, prefix, req)
	if err != nil {
		return fmt.Errorf("ticket API: %w", err)
	}
	target := "/" + prefixSlash(prefix) + "hub/"
	if t.TargetUri != nil {
		target = *t.TargetUri
	}
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	http.Redirect(w, r, target+sep+"qlikTicket="+url.QueryEscape(t.Ticket), http.StatusFound)
	return nil
}

// prefixOf reads the virtual proxy prefix from a proxyRestUri such as
// https://host:4243/qps/sessionvp/.
func prefixOf(proxyRestURI string) (string, error) {
	u, err := url.Parse(proxyRestURI)
	if err != nil || !strings.HasPrefix(u.Path, "/qps/") {
		return "", errors.New("missing parameters: proxyRestUri must be the /qps/ URL openqps sent")
	}
	return strings.Trim(strings.TrimPrefix(u.Path, "/qps/"), "/"), nil
}

func prefixSlash(prefix string) string {
	if prefix == "" {
		return ""
	}
	return prefix + "/"
}

func unescape(s string) (string, error) { return url.PathUnescape(s) }
