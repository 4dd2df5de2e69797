package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/krberror"

	"github.com/openqps/openqps/internal/config"
)

// The forms login of a windows virtual proxy, for browsers the device
// pattern does not match (phones, tablets, browsers outside the domain):
// a page served by openqps whose password openqps checks with a Kerberos
// AS exchange against the realm's KDC. It is where a stranger can try
// passwords, so:
//   - the form is CSRF-protected (a random token in a SameSite=Strict
//     cookie that the posted form must repeat, and the Origin, when sent,
//     must be this proxy), so another site cannot log a victim in as the
//     attacker;
//   - attempts are counted per client address (formsLoginLimiter), so it
//     is no faster a password oracle than the KDC's own lockout policy;
//   - every failed attempt gets the same answer, whether the user exists,
//     is disabled or typed the wrong password.

// formsLoginPath is the forms login's path under the virtual proxy, the
// one QPS uses for its own forms authentication.
const formsLoginPath = "/internal_forms_authentication/"

// formsCSRFCookie holds the forms login's CSRF token.
const formsCSRFCookie = "openqps-forms-csrf"

// maxFormsLoginBody bounds the posted form.
const maxFormsLoginBody = 8 << 10

func isFormsLoginPath(path string) bool {
	return path == formsLoginPath || path == strings.TrimSuffix(formsLoginPath, "/")
}

// formsLogin serves the forms login page (GET) and checks what it posts
// (POST).
func (p *Proxy) formsLogin(rq *request) {
	if !hasFormsLogin(rq.vp) {
		p.reject(rq, http.StatusNotFound, "no forms login", "this virtual proxy logs in with Kerberos only: windows.krb5_conf is not set")
		return
	}
	target := p.formsTarget(rq)
	switch rq.r.Method {
	case http.MethodGet, http.MethodHead:
		p.formsLoginPage(rq, http.StatusOK, target, "")
	case http.MethodPost:
		if err := p.formsLoginPost(rq); err != nil {
			p.storeFailed(rq, err)
		}
	default:
		rq.w.Header().Set("Allow", "GET, POST")
		p.reject(rq, http.StatusMethodNotAllowed, "method not allowed", "the forms login answers GET and POST")
	}
}

// formsTarget is where the browser goes after logging in: the target
// query parameter when it is an address of this proxy, else the virtual
// proxy's root.
func (p *Proxy) formsTarget(rq *request) string {
	if raw, _, found := queryParamFold(rq.r.URL.RawQuery, "target"); found {
		if t, err := p.allowedTarget(rq, "target", raw); err == nil {
			return t
		}
	}
	return "/" + prefixSlash(rq.vp.cfg.Prefix)
}

// formsLoginPage shows the form with a fresh CSRF token.
func (p *Proxy) formsLoginPage(rq *request, status int, target, message string) {
	token := make([]byte, 16)
	rand.Read(token)
	csrf := hex.EncodeToString(token)
	http.SetCookie(rq.w, &http.Cookie{
		Name: formsCSRFCookie, Value: csrf, Path: "/" + prefixSlash(rq.vp.cfg.Prefix) + formsLoginPath[1:],
		HttpOnly: true, Secure: rq.scheme == "https", SameSite: http.SameSiteStrictMode, MaxAge: 3600,
	})
	h := rq.w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The page must not be framed (clickjacking the password field).
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	rq.w.WriteHeader(status)
	w := &rq.vp.cfg.Auth.Windows
	formsPage.Execute(rq.w, formsPageData{
		Action:  "/" + prefixSlash(rq.vp.cfg.Prefix) + formsLoginPath[1:] + "?target=" + url.QueryEscape(target),
		CSRF:    csrf,
		Message: message,
		Example: directoryOf(w, w.Realm) + `\user`,
	})
}

type formsPageData struct {
	Action, CSRF, Message, Example string
}

var formsPage = template.Must(template.New("forms").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title>
<style>body{font-family:system-ui,sans-serif;max-width:24em;margin:4em auto;color:#222}label,input,button{display:block;width:100%;margin:.3em 0}input{padding:.4em}.msg{color:#a00}</style>
</head><body><h1>Sign in</h1>{{if .Message}}<p class="msg">{{.Message}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="u">User name</label><input id="u" name="username" autocomplete="username" placeholder="{{.Example}}" required autofocus>
<label for="p">Password</label><input id="p" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form></body></html>
`))

// wrongCredentials is the one answer to every failed password check.
const wrongCredentials = "The user name or password is wrong."

func (p *Proxy) formsLoginPost(rq *request) error {
	w := &rq.vp.cfg.Auth.Windows
	target := p.formsTarget(rq)
	rq.r.Body = http.MaxBytesReader(rq.w, rq.r.Body, maxFormsLoginBody)
	if err := rq.r.ParseForm(); err != nil {
		p.reject(rq, http.StatusBadRequest, "invalid login form", "post username, password and csrf as application/x-www-form-urlencoded, at most 8 KiB")
		return nil
	}
	if !p.formsCSRFValid(rq) {
		p.log.Warn("forms login CSRF check failed", "event", "auth.forms_csrf", "vp", rq.vp.cfg.Prefix, "remote", rq.r.RemoteAddr)
		p.formsLoginRefused(rq, http.StatusForbidden, target, "The login form expired or was sent from another site. Please sign in again.")
		return nil
	}
	client := clientKey(rq.r.RemoteAddr)
	if wait, ok := p.formsLogins.allow(client, w.FormsLoginAttempts, w.FormsLoginWindow, p.opts.Now()); !ok {
		rq.w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
		p.log.Warn("forms login rate limited", "event", "auth.forms_limited", "vp", rq.vp.cfg.Prefix, "remote", rq.r.RemoteAddr)
		p.formsLoginRefused(rq, http.StatusTooManyRequests, target, "Too many sign-in attempts from your address. Wait "+wait.Round(time.Second).String()+" and try again.")
		return nil
	}
	user, realm, ok := formsPrincipal(w, rq.r.PostForm.Get("username"))
	password := rq.r.PostForm.Get("password")
	if !ok || password == "" {
		p.formsLoginFailed(rq, target, "user name not of a mapped realm or no password")
		return nil
	}
	err := kerberosPassword(w, user, realm, password)
	switch {
	case errors.Is(err, errKDCUnreachable):
		p.log.Error("KDC unreachable for forms login", "event", "auth.kdc_unreachable", "vp", rq.vp.cfg.Prefix, "realm", realm, "error", err)
		p.formsLoginRefused(rq, http.StatusServiceUnavailable, target, "The domain's login server does not answer. Try again in a moment; if it persists, tell your administrator.")
		return nil
	case err != nil:
		p.formsLoginFailed(rq, target, err.Error())
		return nil
	}
	dir := directoryOf(w, realm)
	if user, err = cleanIdentity("user id", "forms login", user); err != nil {
		p.formsLoginFailed(rq, target, err.Error())
		return nil
	}
	if _, err := p.startSession(rq, dir, user, nil); err != nil {
		return err
	}
	p.log.Info("user authenticated", "event", "auth.login", "method", "windows_forms", "vp", rq.vp.cfg.Prefix,
		"user_directory", dir, "user_id", user, "remote", rq.r.RemoteAddr)
	rq.w.Header().Set("Location", target)
	rq.w.Header().Set("Cache-Control", "no-store")
	rq.w.WriteHeader(http.StatusSeeOther)
	return nil
}

// formsCSRFValid checks the posted token against its cookie, and the
// Origin, when the browser sends one, against this proxy's addresses.
func (p *Proxy) formsCSRFValid(rq *request) bool {
	if origin := rq.r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !rq.routes.addressAllowed(u.Scheme, u.Host, rq.vp) {
			return false
		}
	}
	c, err := rq.r.Cookie(formsCSRFCookie)
	posted := rq.r.PostForm.Get("csrf")
	return err == nil && len(c.Value) == 32 && hmac.Equal([]byte(c.Value), []byte(posted))
}

// formsLoginFailed answers a failed password check, the same whatever the
// reason (logged), so the answer tells nobody which user names exist.
func (p *Proxy) formsLoginFailed(rq *request, target, reason string) {
	p.log.Warn("forms login failed", "event", "auth.forms_failed", "vp", rq.vp.cfg.Prefix, "reason", reason, "remote", rq.r.RemoteAddr)
	p.formsLoginRefused(rq, http.StatusUnauthorized, target, wrongCredentials)
}

// formsLoginRefused shows the form again with why the attempt failed; a
// client that is not a browser gets the JSON refusal.
func (p *Proxy) formsLoginRefused(rq *request, status int, target, message string) {
	if !strings.Contains(rq.r.Header.Get("Accept"), "text/html") {
		writeJSON(rq.w, status, struct {
			Error  string `json:"error"`
			Detail string `json:"detail"`
		}{"login refused", message})
		return
	}
	p.formsLoginPage(rq, status, target, message)
}

// formsPrincipal reads a user name as typed on the form: DOMAIN\user,
// user@REALM or user (of the service principal's realm), and returns the
// user and realm to ask the KDC about; only realms mapped to a directory.
func formsPrincipal(w *config.Windows, typed string) (user, realm string, ok bool) {
	typed = strings.TrimSpace(typed)
	switch {
	case strings.Contains(typed, `\`):
		domain, u, _ := strings.Cut(typed, `\`)
		for r, d := range w.RealmDirectories {
			if strings.EqualFold(d, domain) || strings.EqualFold(r, domain) {
				user, realm = u, r
			}
		}
	case strings.Contains(typed, "@"):
		u, r, _ := strings.Cut(typed, "@")
		if _, mapped := realmDirectory(w, r); mapped {
			user, realm = u, strings.ToUpper(r)
		}
	default:
		user, realm = typed, w.Realm
	}
	if user == "" || realm == "" || len(user) > 256 || strings.ContainsAny(user, `/@\`) {
		return "", "", false
	}
	return user, realm, true
}

// directoryOf is the user directory of a mapped realm.
func directoryOf(w *config.Windows, realm string) string {
	d, _ := realmDirectory(w, realm)
	return d
}

// errKDCUnreachable: no KDC of the realm answered.
var errKDCUnreachable = errors.New("no KDC answered")

// kerberosPassword checks a password with an AS exchange: the KDC gives a
// ticket-granting ticket only for the right password. An error that is
// not errKDCUnreachable is a refused login; its text (the KDC's error
// code: wrong password, unknown or locked user) is for the log only.
func kerberosPassword(w *config.Windows, user, realm, password string) error {
	cl := client.NewWithPassword(user, realm, password, w.KrbConfig, client.DisablePAFXFAST(true))
	defer cl.Destroy()
	err := cl.Login()
	var kerr krberror.Krberror
	if errors.As(err, &kerr) && kerr.RootCause == krberror.NetworkingError {
		return errors.Join(errKDCUnreachable, err)
	}
	return err
}

// clientKey is the address a forms login attempt is counted against: the
// IPv4 address, or the /64 of an IPv6 one (a host gets a whole /64).
func clientKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if a.Is4() || a.Is4In6() {
		return a.Unmap().String()
	}
	pfx, _ := a.Prefix(64)
	return pfx.String()
}

// formsLoginLimiter counts forms login attempts per client address in
// fixed windows. Safe for concurrent use.
type formsLoginLimiter struct {
	mu      sync.Mutex
	clients map[string]*loginAttempts
}

type loginAttempts struct {
	start time.Time
	count int
}

// maxLimitedClients bounds the addresses the limiter remembers: past it,
// expired windows are dropped, and while it is still full new addresses
// are refused (failing closed) rather than let in uncounted.
const maxLimitedClients = 100_000

// allow counts an attempt of client and reports whether it is within
// limit attempts per window, or else how long until the next is allowed.
func (l *formsLoginLimiter) allow(client string, limit int, window time.Duration, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.clients == nil {
		l.clients = map[string]*loginAttempts{}
	}
	a := l.clients[client]
	if a == nil || now.Sub(a.start) >= window {
		if a == nil && len(l.clients) >= maxLimitedClients {
			for k, v := range l.clients {
				if now.Sub(v.start) >= window {
					delete(l.clients, k)
				}
			}
			if len(l.clients) >= maxLimitedClients {
				return window, false
			}
		}
		a = &loginAttempts{start: now}
		l.clients[client] = a
	}
	if a.count >= limit {
		return a.start.Add(window).Sub(now), false
	}
	a.count++
	return 0, true
}
