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

// withoutCookie returns the Cookie header values with the cookie name
// removed, so the proxy's session id never reaches a back end.
func withoutCookie(headers []string, name string) []string {
	var out []string
	for _, h := range headers {
		var b strings.Builder
		size := len(h) + 16 // "; " may replace a bare ";"
		for h != "" {
			var part string
			part, h, _ = strings.Cut(h, ";")
			part = strings.TrimSpace(part)
			if k, _, _ := strings.Cut(part, "="); k == name || part == "" {
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
