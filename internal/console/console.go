// Package console is openqps's admin console: server-rendered pages under
// /<prefix>/openqps/ of a virtual proxy, for the users the admin section
// names, logged in through that virtual proxy's own login method. The
// front end hands it only requests it has authenticated
// (proxy.Options.Console); nothing of the console reaches a back end.
//
// Every answer carries a Content-Security-Policy without inline script
// and no-store; every action is a POST with a CSRF token bound to the
// admin's session and from the console's own origin.
package console

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/metrics"
	"github.com/openqps/openqps/internal/proxy"
	"github.com/openqps/openqps/internal/session"
)

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"redact": session.Redact,
	"vpname": func(p string) string {
		if p == "" {
			return "(default)"
		}
		return p
	},
}).ParseFS(assets, "assets/*.html"))

// Options are what the console reads and acts on.
type Options struct {
	Store    session.Store
	Config   func() *config.Config    // the configuration in force
	Reload   func() error             // reads the configuration file again (SIGHUP's work)
	Backends func() []metrics.Backend // every back end with its health
	// Recent holds the last audit events (may be nil).
	Recent *Recent
	// Websockets counts a session's open websockets on this node.
	Websockets func(prefix, id string) int
	Log        *slog.Logger
	Now        func() time.Time
}

// Console serves the pages. It is an http.Handler for proxy.Options.Console.
type Console struct {
	opts   Options
	static http.Handler
}

// New returns the console.
func New(opts Options) *Console {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	sub, _ := fs.Sub(assets, "assets/static")
	return &Console{opts: opts, static: http.FileServerFS(sub)}
}

// pageSize is how many sessions a page lists.
const pageSize = 50

// Secret names in the store: keys every node shares.
const (
	csrfSecret = "console-csrf"
	sealSecret = "console-seal"
)

// call is one console request.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	cr   *proxy.ConsoleRequest
	cfg  *config.Config
	csrf string
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: under no-referrer a browser sends
	// "Origin: null" with a form POST, and the origin check needs it.
	h.Set("Referrer-Policy", "same-origin")
	cr, ok := proxy.ConsoleRequestFrom(r.Context())
	if !ok {
		c.refuse(w, r, nil, http.StatusForbidden, "not authenticated", "the console is reached through a virtual proxy's login")
		return
	}
	cfg := c.opts.Config()
	if cr.Anonymous || !cfg.Admin.IsAdmin(cr.Session.UserDirectory, cr.Session.UserID, attrs(cr.Session.Attributes)) {
		c.refuse(w, r, cr, http.StatusForbidden, "not an admin",
			fmt.Sprintf("%s\\%s is not named by the admin section (admin.users or admin.attribute): ask an administrator of openqps", cr.Session.UserDirectory, cr.Session.UserID))
		return
	}
	sub := cr.Path
	if static, ok := strings.CutPrefix(sub, "/static/"); ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		h.Set("Cache-Control", "no-cache")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + static
		c.static.ServeHTTP(w, r2)
		return
	}
	token, err := c.csrfToken(r.Context(), cr)
	if err != nil {
		c.refuse(w, r, cr, http.StatusServiceUnavailable, "session store unavailable", "retry shortly")
		return
	}
	k := &call{w: w, r: r, cr: cr, cfg: cfg, csrf: token}
	if r.Method == http.MethodPost {
		if !c.checkPost(k) {
			return
		}
		switch sub {
		case "/sessions/end":
			c.endSession(k)
		case "/users/end":
			c.endUser(k)
		case "/config/reload":
			c.reload(k)
		default:
			c.refuse(w, r, cr, http.StatusNotFound, "no such action", "the console's actions are its forms' buttons")
		}
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD, POST")
		c.refuse(w, r, cr, http.StatusMethodNotAllowed, "method not allowed", "use the console's pages and buttons")
		return
	}
	switch sub {
	case "", "/":
		http.Redirect(w, r, cr.Base+"/sessions", http.StatusSeeOther)
	case "/sessions":
		c.sessions(k)
	case "/proxies":
		c.proxies(k)
	case "/events":
		c.events(k)
	case "/config":
		c.config(k, "", false)
	default:
		c.refuse(w, r, cr, http.StatusNotFound, "no such page", "the console's pages are Sessions, Virtual proxies, Events and Configuration")
	}
}

func attrs(list []session.Attribute) func(yield func(string, string) bool) {
	return func(yield func(string, string) bool) {
		for _, a := range list {
			if !yield(a.Key, a.Value) {
				return
			}
		}
	}
}

// csrfToken is an HMAC of the admin's session under a key every node
// shares: knowing the session id is not enough to make it, and a token
// of one session (or virtual proxy) is no token of another.
func (c *Console) csrfToken(ctx context.Context, cr *proxy.ConsoleRequest) (string, error) {
	key, err := c.opts.Store.Secret(ctx, csrfSecret)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(cr.Prefix + "\x00" + cr.Session.ID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

// checkPost refuses an action that does not come from the console's own
// page: another origin (Origin, Sec-Fetch-Site), or no or a wrong token.
func (c *Console) checkPost(k *call) bool {
	r := k.r
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		c.refuse(k.w, r, k.cr, http.StatusForbidden, "cross-site request", fmt.Sprintf("the browser says this action came from another site (Sec-Fetch-Site: %s); use the console's own buttons", site))
		return false
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) || u.Scheme != scheme(r) {
			c.refuse(k.w, r, k.cr, http.StatusForbidden, "cross-origin request", fmt.Sprintf("Origin %q is not the console's own; use the console's own buttons", origin))
			return false
		}
	}
	r.Body = http.MaxBytesReader(k.w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.refuse(k.w, r, k.cr, http.StatusBadRequest, "invalid form", err.Error())
		return false
	}
	if got := r.PostForm.Get("csrf"); got == "" || !hmac.Equal([]byte(got), []byte(k.csrf)) {
		c.refuse(k.w, r, k.cr, http.StatusForbidden, "CSRF token missing or wrong", "reload the console page and use its button again")
		return false
	}
	return true
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// seal makes the opaque handle of a session that a page's "end" button
// posts: the page never shows a session id, which is a bearer secret.
func (c *Console) seal(ctx context.Context, prefix, id string) (string, error) {
	aead, err := c.aead(ctx)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(prefix+"\x00"+id), nil)), nil
}

func (c *Console) unseal(ctx context.Context, handle string) (prefix, id string, err error) {
	aead, err := c.aead(ctx)
	if err != nil {
		return "", "", err
	}
	b, err := base64.RawURLEncoding.DecodeString(handle)
	if err != nil || len(b) < aead.NonceSize() {
		return "", "", errors.New("not a session handle of this console")
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], nil)
	if err != nil {
		return "", "", errors.New("not a session handle of this console")
	}
	prefix, id, _ = strings.Cut(string(plain), "\x00")
	return prefix, id, nil
}

func (c *Console) aead(ctx context.Context) (cipher.AEAD, error) {
	key, err := c.opts.Store.Secret(ctx, sealSecret)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// page is what every template gets.
type page struct {
	Title   string
	Base    string
	CSRF    string
	Admin   string
	Tab     string
	Message string
	Failed  bool
	Data    any
}

func (c *Console) render(k *call, status int, tab, title string, data any, msg string, failed bool) {
	p := page{Title: title, Base: k.cr.Base, CSRF: k.csrf, Admin: k.cr.Session.UserDirectory + `\` + k.cr.Session.UserID,
		Tab: tab, Data: data, Message: msg, Failed: failed}
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, tab+".html", p); err != nil {
		c.opts.Log.Error("console page failed", "event", "console.error", "page", tab, "err", err)
		http.Error(k.w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	k.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	k.w.WriteHeader(status)
	if k.r.Method != http.MethodHead {
		k.w.Write([]byte(b.String()))
	}
}

// refuse answers a refusal as an HTML page and logs it once.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, cr *proxy.ConsoleRequest, status int, msg, detail string) {
	user, vp := "", ""
	if cr != nil {
		user, vp = cr.Session.UserDirectory+`\`+cr.Session.UserID, cr.Prefix
	}
	c.opts.Log.Warn("console request refused", "event", "console.refused", "status", status, "vp", vp, "user", user,
		"method", r.Method, "error", msg, "detail", detail, "remote", r.RemoteAddr)
	var b strings.Builder
	pages.ExecuteTemplate(&b, "refused.html", struct {
		Status        int
		Error, Detail string
	}{status, msg, detail})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}
