package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// VirtualProxy is one virtual proxy, selected by the first path segment.
type VirtualProxy struct {
	Prefix                          string        `yaml:"prefix"`
	Description                     string        `yaml:"description"`
	SessionCookieName               string        `yaml:"session_cookie_name"`
	SessionCookieDomain             string        `yaml:"session_cookie_domain"`
	SessionInactivityTimeout        time.Duration `yaml:"session_inactivity_timeout"`
	AuthenticationModuleRedirectURI string        `yaml:"authentication_module_redirect_uri"`
	Backends                        []string      `yaml:"backends"`

	// Authentication (issue: ticket API and other methods). Validated in
	// auth.go.
	Auth Auth `yaml:",inline"`
	// Proxying: load balancing, health, websockets, cookies and response
	// headers. Validated in forwarding.go.
	Proxying Proxying `yaml:",inline"`

	// BackendURLs are the parsed Backends, filled in by validation.
	BackendURLs []*url.URL `yaml:"-"`
}

// DefaultTimeout is a virtual proxy's session inactivity timeout.
const DefaultTimeout = 30 * time.Minute

// ReservedPrefixes may not be used as virtual proxy prefixes: they are
// resource names of the trusted API (/qps/{resource}) or paths QPS
// reserves on the front end.
var ReservedPrefixes = map[string]bool{
	"qps": true, "session": true, "ticket": true, "user": true, "alive": true,
	"error": true, "qrs": true, "qmc": true, "hub": true, "app": true,
	"resources": true, "api": true, "sense": true, "demo-login": true, // the demo's login module
	"csrftoken": true, "restarted": true,
	ConsolePath: true, // the admin console of the default virtual proxy (admin.go)
}

var prefixPattern = regexp.MustCompile(`^[a-z0-9._~-]+$`)

// virtualProxies checks each virtual proxy, and that no two share a
// prefix or a session cookie.
func (v *validator) virtualProxies(vps []VirtualProxy) {
	if len(vps) == 0 {
		v.fail("virtual_proxies", "name at least one virtual proxy, e.g. {prefix: \"\", backends: [\"http://127.0.0.1:9000\"]}")
	}
	prefixes := map[string]int{}
	cookies := map[string]int{}
	for i := range vps {
		vp := &vps[i]
		at := fmt.Sprintf("virtual_proxies[%d]", i)
		v.virtualProxy(at, vp)
		v.auth(at, vp)
		v.proxying(at, vp)
		if j, dup := prefixes[vp.Prefix]; dup {
			v.fail(at+".prefix", fmt.Sprintf("%q is already the prefix of virtual_proxies[%d]", vp.Prefix, j))
		}
		prefixes[vp.Prefix] = i
		if j, dup := cookies[vp.SessionCookieName]; dup {
			v.fail(at+".session_cookie_name", fmt.Sprintf("%q is already the cookie of virtual_proxies[%d]; each virtual proxy needs its own", vp.SessionCookieName, j))
		}
		cookies[vp.SessionCookieName] = i
	}
}

// CookieName is the session cookie of a virtual proxy with the given
// prefix when the configuration names none: X-Qlik-Session for the
// default virtual proxy, X-Qlik-Session-<prefix> for the others.
func CookieName(prefix string) string {
	if prefix == "" {
		return "X-Qlik-Session"
	}
	return "X-Qlik-Session-" + prefix
}

func (v *validator) virtualProxy(at string, vp *VirtualProxy) {
	vp.Prefix = strings.Trim(vp.Prefix, "/")
	if vp.Prefix != "" {
		switch {
		case !prefixPattern.MatchString(vp.Prefix):
			v.fail(at+".prefix", fmt.Sprintf("%q: use lower-case letters, digits and . _ ~ - only, one path segment", vp.Prefix))
		case ReservedPrefixes[vp.Prefix]:
			v.fail(at+".prefix", fmt.Sprintf("%q is reserved (it is a path of the trusted API or of the hub); choose another", vp.Prefix))
		}
	}
	if vp.SessionCookieName == "" {
		vp.SessionCookieName = CookieName(vp.Prefix)
	} else if !validCookieName(vp.SessionCookieName) {
		v.fail(at+".session_cookie_name", fmt.Sprintf("%q is not a valid cookie name", vp.SessionCookieName))
	}
	if vp.SessionInactivityTimeout == 0 {
		vp.SessionInactivityTimeout = DefaultTimeout
	} else if vp.SessionInactivityTimeout < time.Second {
		v.fail(at+".session_inactivity_timeout", "must be at least 1s (e.g. 30m)")
	}
	if u := vp.AuthenticationModuleRedirectURI; u != "" {
		// A path (starting with "/") is a login module served on the
		// front end itself (as the demo's); it is resolved per request.
		p, err := url.Parse(u)
		if err != nil || (!strings.HasPrefix(u, "/") && (!p.IsAbs() || p.Host == "")) {
			v.fail(at+".authentication_module_redirect_uri", fmt.Sprintf("%q is not an absolute URL or a path starting with /", u))
		}
	}
	if len(vp.Backends) == 0 {
		v.fail(at+".backends", "name at least one back end, e.g. [\"http://127.0.0.1:9000\"]")
	}
	vp.BackendURLs = vp.BackendURLs[:0]
	for j, b := range vp.Backends {
		p, err := url.Parse(b)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			v.fail(fmt.Sprintf("%s.backends[%d]", at, j), fmt.Sprintf("%q is not an http(s) URL", b))
			continue
		}
		vp.BackendURLs = append(vp.BackendURLs, p)
	}
}

func validCookieName(name string) bool {
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return name != ""
}
