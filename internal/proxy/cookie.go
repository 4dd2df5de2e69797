package proxy

import "strings"

// cookieValues calls fn with each value of the cookie name in the Cookie
// headers, in order, until fn returns true. It parses only as far as it
// must and allocates nothing, unlike http.Request.Cookies, because it runs
// on every request.
func cookieValues(headers []string, name string, fn func(string) bool) {
	for _, h := range headers {
		for len(h) > 0 {
			var part string
			if i := strings.IndexByte(h, ';'); i >= 0 {
				part, h = h[:i], h[i+1:]
			} else {
				part, h = h, ""
			}
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if v != "" && fn(v) {
				return
			}
		}
	}
}

// sessionCookieNames are the session cookie names of every virtual
// proxy, both the HTTPS and the -HTTP form, as newRoutes lists them once
// per (re)load. Both directions ask them: no back end gets any of them
// in a Cookie header (withoutSessionCookies) or sets one with Set-Cookie.
type sessionCookieNames []string

// has reports whether name is one of names, compared ASCII
// case-insensitively, as lenient cookie parsers read them (ASP.NET among
// them). It allocates nothing.
func (names sessionCookieNames) has(name string) bool {
	for _, n := range names {
		if asciiEqualFold(name, n) {
			return true
		}
	}
	return false
}

// isSessionCookieName reports whether name (a cookie name, already
// trimmed) is the session cookie of one of rt's virtual proxies, over
// HTTPS or plain HTTP. Nil routes have none.
func (rt *routes) isSessionCookieName(name string) bool {
	return rt != nil && rt.sessionCookies.has(name)
}

// withoutSessionCookies returns the Cookie header values without any
// cookie whose name is one of names (without surrounding spaces, as
// lenient cookie parsers read them), so that no back end gets a session
// id of any virtual proxy. Values with none of them are returned as they
// came; it allocates only for a value it must rewrite.
func withoutSessionCookies(headers []string, names sessionCookieNames) []string {
	clean := true
	for _, h := range headers {
		if hasSessionCookie(h, names) {
			clean = false
			break
		}
	}
	if clean {
		return headers
	}
	var out []string
	for _, h := range headers {
		if !hasSessionCookie(h, names) {
			out = append(out, h)
			continue
		}
		var b strings.Builder
		size := len(h) + 16 // "; " may replace a bare ";"
		for h != "" {
			var part string
			part, h, _ = strings.Cut(h, ";")
			part = strings.TrimSpace(part)
			if part == "" || isSessionCookie(part, names) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			} else {
				b.Grow(size) // only once a cookie is kept: often none is
			}
			b.WriteString(part)
		}
		if b.Len() > 0 {
			out = append(out, b.String())
		}
	}
	return out
}

// hasSessionCookie reports whether the Cookie header value h holds a
// cookie named one of names.
func hasSessionCookie(h string, names sessionCookieNames) bool {
	for h != "" {
		var part string
		part, h, _ = strings.Cut(h, ";")
		if isSessionCookie(part, names) {
			return true
		}
	}
	return false
}

// isSessionCookie reports whether one name=value pair of a Cookie header
// is named one of names.
func isSessionCookie(pair string, names sessionCookieNames) bool {
	k, _, _ := strings.Cut(pair, "=")
	return names.has(strings.TrimSpace(k))
}

// asciiEqualFold is strings.EqualFold for ASCII only: a back end does not
// take the Kelvin sign for a K, so neither does openqps.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// queryParamFold returns the value of the first query parameter whose name
// equals name case-insensitively (QPS clients spell qlikTicket as
// QlikTicket, qlikTicket and qlikticket) and the query without it.
func queryParamFold(rawQuery, name string) (value, rest string, found bool) {
	if !containsFold(rawQuery, name) {
		return "", rawQuery, false
	}
	var kept []string
	for _, kv := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if strings.EqualFold(k, name) {
			if !found {
				value, found = v, true
			}
			continue
		}
		if kv != "" {
			kept = append(kept, kv)
		}
	}
	if !found {
		return "", rawQuery, false // only a name that contains it: leave the query as it came
	}
	return value, strings.Join(kept, "&"), true
}
