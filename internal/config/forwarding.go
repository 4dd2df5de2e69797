package config

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// Proxying configures how a virtual proxy forwards: load balancing, back
// end health, websockets, its session cookie and extra response headers.
type Proxying struct {
	// LoadBalancing: round_robin (default), least_requests or sticky.
	LoadBalancing string `yaml:"load_balancing"`
	// BackendConnectTimeout bounds connecting to a back end (default 5s).
	BackendConnectTimeout time.Duration `yaml:"backend_connect_timeout"`
	// BackendResponseTimeout bounds the wait for a back end's response
	// head; 0 (default) waits as long as the client does.
	BackendResponseTimeout time.Duration `yaml:"backend_response_timeout"`
	// BackendDownFor is how long a back end that refused a connection or
	// timed out is left out (default 10s). With health_check set, it stays
	// out until a check passes.
	BackendDownFor time.Duration `yaml:"backend_down_for"`
	// HealthCheck configures active health checks; off when Path is empty.
	HealthCheck HealthCheck `yaml:"health_check"`
	// HostAllowList: hosts allowed as websocket Origin and as targetUri
	// hosts (QPS's websocketCrossOriginWhiteList).
	HostAllowList []string `yaml:"websocket_origin_allow_list"`
	// CSRFToken requires QPS's qlik-csrf-token on websocket upgrades.
	CSRFToken bool `yaml:"csrf_token"`
	// SessionCookieSameSite: unset (default), none, lax or strict.
	SessionCookieSameSite string `yaml:"session_cookie_same_site"`
	// SessionCookieSecure: auto (default: Secure over HTTPS only), always
	// or never.
	SessionCookieSecure string `yaml:"session_cookie_secure"`
	// AdditionalResponseHeaders are added to every response.
	AdditionalResponseHeaders map[string]string `yaml:"additional_response_headers"`
}

// HealthCheck is an active health check: every Interval, GET Path on
// each back end; a node is healthy while it answers ExpectedStatus within
// Timeout.
type HealthCheck struct {
	Path           string        `yaml:"path"`
	Interval       time.Duration `yaml:"interval"`        // default 10s
	Timeout        time.Duration `yaml:"timeout"`         // default 2s
	ExpectedStatus int           `yaml:"expected_status"` // default 200
}

// MaxBackends is the most back ends one virtual proxy may have.
const MaxBackends = 64

// proxying fills the defaults of a virtual proxy's proxying settings and
// validates them.
func (v *validator) proxying(at string, vp *VirtualProxy) {
	px := &vp.Proxying
	if px.LoadBalancing == "" {
		px.LoadBalancing = "round_robin"
	}
	switch px.LoadBalancing {
	case "round_robin", "least_requests", "sticky":
	default:
		v.fail(at+".load_balancing", fmt.Sprintf("%q is not a policy; use round_robin, least_requests or sticky", px.LoadBalancing))
	}
	if len(vp.Backends) > MaxBackends {
		v.fail(at+".backends", fmt.Sprintf("%d back ends; at most %d per virtual proxy", len(vp.Backends), MaxBackends))
	}
	if px.BackendConnectTimeout == 0 {
		px.BackendConnectTimeout = 5 * time.Second
	}
	if px.BackendDownFor == 0 {
		px.BackendDownFor = 10 * time.Second
	}
	if px.BackendConnectTimeout < 0 || px.BackendResponseTimeout < 0 || px.BackendDownFor < 0 {
		v.fail(at, "backend_connect_timeout, backend_response_timeout and backend_down_for must be positive")
	}
	if hc := &px.HealthCheck; hc.Path != "" {
		if !strings.HasPrefix(hc.Path, "/") {
			v.fail(at+".health_check.path", fmt.Sprintf("%q must start with /", hc.Path))
		}
		if hc.Interval == 0 {
			hc.Interval = 10 * time.Second
		}
		if hc.Timeout == 0 {
			hc.Timeout = 2 * time.Second
		}
		if hc.ExpectedStatus == 0 {
			hc.ExpectedStatus = 200
		}
		if hc.Interval < 10*time.Millisecond || hc.Timeout < 0 {
			v.fail(at+".health_check.interval", "must be at least 10ms, and timeout positive")
		}
		if hc.ExpectedStatus < 100 || hc.ExpectedStatus > 599 {
			v.fail(at+".health_check.expected_status", fmt.Sprintf("%d is not an HTTP status", hc.ExpectedStatus))
		}
	} else if hc.Interval != 0 || hc.Timeout != 0 || hc.ExpectedStatus != 0 {
		v.fail(at+".health_check.path", "set a path (e.g. /health) to turn health checks on")
	}
	for i, h := range px.HostAllowList {
		if h == "" || strings.ContainsAny(h, "/ *") {
			v.fail(fmt.Sprintf("%s.websocket_origin_allow_list[%d]", at, i), fmt.Sprintf("%q: use host names, e.g. mashup.example.com (no scheme, path or wildcard)", h))
		}
	}
	if px.SessionCookieSameSite == "" {
		px.SessionCookieSameSite = "unset"
	}
	switch px.SessionCookieSameSite {
	case "unset", "none", "lax", "strict":
	default:
		v.fail(at+".session_cookie_same_site", fmt.Sprintf("%q: use unset, none, lax or strict", px.SessionCookieSameSite))
	}
	if px.SessionCookieSecure == "" {
		px.SessionCookieSecure = "auto"
	}
	switch px.SessionCookieSecure {
	case "auto", "always", "never":
	default:
		v.fail(at+".session_cookie_secure", fmt.Sprintf("%q: use auto (Secure over HTTPS), always or never", px.SessionCookieSecure))
	}
	if px.SessionCookieSameSite == "none" && px.SessionCookieSecure == "never" {
		v.fail(at+".session_cookie_same_site", "none needs a Secure cookie (browsers drop SameSite=None without Secure); set session_cookie_secure to auto or always")
	}
	for name, value := range px.AdditionalResponseHeaders {
		key := at + ".additional_response_headers"
		switch {
		case !validHeaderName(name):
			v.fail(key, fmt.Sprintf("%q is not a valid header name", name))
		case strings.ContainsAny(value, "\r\n\x00"):
			v.fail(key, fmt.Sprintf("the value of %s contains a line break or NUL", name))
		case reservedResponseHeaders[textproto.CanonicalMIMEHeaderKey(name)]:
			v.fail(key, fmt.Sprintf("%s is set by openqps itself and cannot be configured", name))
		}
	}
}

// reservedResponseHeaders describe the connection or the session; a
// configured value would break framing or let a header forge a cookie.
var reservedResponseHeaders = map[string]bool{
	"Connection": true, "Content-Length": true, "Transfer-Encoding": true, "Upgrade": true,
	"Set-Cookie": true, "Trailer": true, "Keep-Alive": true,
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return http.CanonicalHeaderKey(name) != ""
}
