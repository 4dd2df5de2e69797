package config

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// Proxying configures how a virtual proxy forwards: load balancing, back
// end health, websockets, its session cookie and extra response headers.
type Proxying struct {
	// LoadBalancing: round_robin (default), least_requests or sticky.
	LoadBalancing string `yaml:"load_balancing"`
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
