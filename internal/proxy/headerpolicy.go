package proxy

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/upstream"
)

// The header policy: which of a client's request fields a back end sees,
// which fields openqps states for it (identity, forwarding), and which of a
// back end's response fields a browser never gets. What a field is to the
// connection (hop-by-hop) is the transport's business (internal/upstream);
// what it means to openqps is this file's.

// outboundHeader is the header the back end sees (see eachOutboundHeader),
// as a map for an outgoing *http.Request. Header values are shared with
// the incoming request, not copied: nothing downstream modifies them.
func outboundHeader(in *http.Request, rq *request) http.Header {
	out := make(http.Header, len(in.Header)+6)
	// The values openqps sets share one backing array: one allocation
	// instead of one per header.
	set := make([]string, 0, 5)
	eachOutboundHeader(in, rq, func(k string, vv []string, v string) {
		if vv == nil {
			set = append(set, v)
			vv = set[len(set)-1:]
		}
		out[k] = vv
	})
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = emptyValue // keep Go from adding its own
	}
	return out
}

// eachOutboundHeader calls emit once for every header the back end gets:
// the client's headers without hop-by-hop ones (and those the client's
// Connection header names), without any X-Qlik-* or X-Forwarded-* (which
// only openqps may set), without the header a header-auth virtual proxy
// reads its users from, without an underscore spelling of any of these
// or of a framing header, and without any virtual proxy's session
// cookie; then the identity and forwarding headers, X-Forwarded-Host a
// name of this proxy. emit gets the client's values as vv, or a single
// value openqps sets as v (vv nil).
func eachOutboundHeader(in *http.Request, rq *request, emit func(k string, vv []string, v string)) {
	conn := in.Header["Connection"]
	for k, vv := range in.Header {
		switch {
		case upstream.HopByHop(k, conn), spoofable(k), rq.routes.credentialHeader(k), underscoreAlias(k, conn, rq.routes):
			continue
		case k == "Cookie":
			if kept := withoutSessionCookies(vv, rq.routes.sessionCookies); len(kept) > 0 {
				emit(k, kept, "")
			}
			continue
		}
		emit(k, vv, "")
	}
	if te := in.Header["Te"]; len(te) > 0 && upstream.HasToken(te, "trailers") {
		emit("Te", teTrailers, "")
	}
	s := rq.session
	emit("X-Qlik-User", nil, userHeader(s))
	emit("X-Qlik-Security", nil, securityHeader(s))
	emit("X-Qlik-Virtual-Proxy-Prefix", nil, s.Prefix)
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		emit("X-Forwarded-For", nil, ip)
	}
	emit("X-Forwarded-Host", nil, rq.routes.forwardedHost(rq.scheme, in.Host, rq.vp))
	if rq.scheme == "https" {
		emit("X-Forwarded-Proto", forwardedHTTPS, "")
	} else {
		emit("X-Forwarded-Proto", forwardedHTTP, "")
	}
}

// credentialHeader reports whether k (canonical) is a header that a
// header-auth virtual proxy reads its users from.
func (rt *routes) credentialHeader(k string) bool {
	return len(rt.credentialHeaders) > 0 && rt.credentialHeaders[k]
}

// underscoreAlias reports whether k spells with underscores a header
// that openqps never forwards: a framing or hop-by-hop header, one the
// Connection header names, or a header-auth virtual proxy's credential.
// CGI-style servers (and IIS, PHP, many WSGI setups) read "_" and "-"
// alike, so Transfer_Encoding would frame the body for them, and
// X_Remote_User log a user in. (X-Qlik-* and X-Forwarded-* are spoofable
// in any spelling.) Names without an underscore cost one byte scan.
func underscoreAlias(k string, conn []string, rt *routes) bool {
	if strings.IndexByte(k, '_') < 0 {
		return false
	}
	d := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
	return upstream.HopByHop(d, conn) || d == "Content-Length" || rt.credentialHeader(d)
}

// EachField writes the fields the back end gets (see eachOutboundHeader):
// a request is the upstream.Fields of its own outbound head.
func (rq *request) EachField(emit func(k string, vv []string, v string)) {
	eachOutboundHeader(rq.r, rq, emit)
}

// Constant header values, shared by every request (never modified).
var (
	teTrailers     = []string{"trailers"}
	emptyValue     = []string{""}
	forwardedHTTP  = []string{"http"}
	forwardedHTTPS = []string{"https"}
)

// spoofable reports whether a client-sent header names identity or
// forwarding facts that only openqps may state: X-Qlik-*, X-Forwarded-*,
// Forwarded and X-Real-IP. Underscores count as dashes, because some
// back ends (CGI-style servers, IIS modules) read X_Qlik_User as
// X-Qlik-User.
func spoofable(name string) bool {
	if name == "" || name[0]|0x20 != 'x' && name[0]|0x20 != 'f' {
		return false // the common case, cheaply
	}
	if strings.IndexByte(name, '_') >= 0 {
		name = strings.ReplaceAll(name, "_", "-")
	}
	return hasPrefixFold(name, "X-Qlik-") || hasPrefixFold(name, "X-Forwarded-") ||
		strings.EqualFold(name, "Forwarded") || strings.EqualFold(name, "X-Real-Ip")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// headerEscape URL-encodes a value for X-Qlik-User and X-Qlik-Security as
// QPS does (UTF-8, percent-encoded), so that "; " or "=" inside a value
// cannot forge another field.
func headerEscape(v string) string {
	return strings.ReplaceAll(url.QueryEscape(v), "+", "%20")
}

// userHeader is the X-Qlik-User value: UserDirectory=<d>; UserId=<u>.
func userHeader(s session.Session) string {
	return "UserDirectory=" + headerEscape(s.UserDirectory) + "; UserId=" + headerEscape(s.UserID)
}

// securityHeader is the X-Qlik-Security value carrying the session's
// attributes: SecureRequest=true; Context=AppAccess; Group=Sales; ...
// openqps's own fields come first and are the only ones of their names:
// an attribute that would read as one of them (session.ReservedAttribute)
// is renamed with reservedAttributePrefix. The session API refuses such
// attributes; this covers those that arrive another way (a JWT claim
// mapped to that name, a session stored by an older openqps).
func securityHeader(s session.Session) string {
	const head = "SecureRequest=true; Context=AppAccess;"
	n := len(head)
	for _, a := range s.Attributes {
		n += len(a.Key) + len(a.Value) + 3
	}
	var b strings.Builder
	b.Grow(n) // exact unless a value needs escaping or renaming
	b.WriteString(head)
	for _, a := range s.Attributes {
		b.WriteByte(' ')
		if session.ReservedAttribute(a.Key) {
			b.WriteString(reservedAttributePrefix)
		}
		b.WriteString(headerEscape(a.Key))
		b.WriteByte('=')
		b.WriteString(headerEscape(a.Value))
		b.WriteByte(';')
	}
	return b.String()
}

// reservedAttributePrefix goes in front of an attribute named like one of
// openqps's own X-Qlik-Security fields: Attribute-Context=ManagementAccess
// keeps the value for whoever wants it, and no back end takes it for the
// Context.
const reservedAttributePrefix = "Attribute-"

// DropField reports whether a back end's response field is one no
// browser may get from it: a Set-Cookie that would set a session cookie
// of one of rt's virtual proxies (see isSessionCookieName). openqps alone sets
// those: a back end that set one could fix a browser's session on any
// virtual proxy, an anonymous one's back end on the others' too. Routes
// are the upstream.Filter of every forwarded request.
func (rt *routes) DropField(k, v string) bool {
	return k == "Set-Cookie" && rt.isSessionCookieName(setCookieName(v))
}

// setCookieName is the name a browser gives back the cookie of the
// Set-Cookie value v under (RFC 6265bis §5.6): the part before the first
// ';', up to its first '=', without surrounding white space. A nameless
// cookie ("=X-Qlik-Session=1", or no '=' at all) is sent back as its
// bare value, "X-Qlik-Session=1", which a server reads as the cookie
// X-Qlik-Session: its name is then the value's part before '='. White
// space is what strings.TrimSpace trims, more than the spaces and tabs a
// browser trims, because openqps trims so when it reads the Cookie
// header (cookieValues): a name that only looks different to the browser
// is still a session cookie's.
func setCookieName(v string) string {
	pair, _, _ := strings.Cut(v, ";")
	name, value, found := strings.Cut(pair, "=")
	if !found {
		name, value = "", pair
	}
	if name = strings.TrimSpace(name); name == "" {
		name, _, _ = strings.Cut(value, "=")
		name = strings.TrimSpace(name)
	}
	return name
}

// hasToken is upstream.HasToken, for the front end's checks of a client's
// Connection and TE fields.
func hasToken(values []string, token string) bool { return upstream.HasToken(values, token) }
