package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// plainHead is what readPlainHead learned of a response head.
type plainHead struct {
	status int
	length int64 // the Content-Length
	close  bool  // the back end closes the connection after this response
}

// maxPlainFields bounds the header fields of a plain head; a response
// with more goes to http.ReadResponse.
const maxPlainFields = 32

// readPlainHead reads a response head of the plain kind nearly every
// back-end answer is: HTTP/1.1, a final status (200-599), one
// Content-Length, no Transfer-Encoding and no Trailer, every line well
// formed, the whole head already in br's buffer. Its fields go straight
// into h, the client's response header, as forwardHTTP would copy them
// (see addBackendHeader), less the hop-by-hop ones and those the
// Connection header names, and less any Set-Cookie that names a session
// cookie of rt (see dropSessionCookies; rt may be nil). That saves
// http.ReadResponse's response object, header map and parsing on nearly
// every request.
//
// Anything else it leaves unread and h untouched (ok false) for
// http.ReadResponse, which knows every other case and every error: the
// head is checked whole before h is touched.
func readPlainHead(br *bufio.Reader, h http.Header, rt *routes) (head plainHead, ok bool) {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return head, false // not whole yet, or not CRLF-delimited
	}
	status, rest, _ := bytes.Cut(buf[:end+2], []byte("\r\n"))
	if len(status) < 12 || string(status[:9]) != "HTTP/1.1 " || len(status) > 12 && status[12] != ' ' || hasCTL(string(status)) {
		return head, false
	}
	for _, c := range status[9:12] {
		if c < '0' || c > '9' {
			return head, false
		}
		head.status = head.status*10 + int(c-'0')
	}
	if head.status < 200 || head.status > 599 {
		return head, false
	}
	// One string for all fields: the names (when canonical already) and
	// the values the client's header gets are slices of it.
	fields := string(rest)

	// First pass: check every field; find the length and the
	// Connection header.
	var conn []string
	n := 0
	head.length = -1
	for s := fields; s != ""; n++ {
		var line string
		line, s, _ = strings.Cut(s, "\r\n")
		name, value, valid := splitField(line)
		if !valid || n == maxPlainFields {
			return head, false
		}
		switch {
		case strings.EqualFold(name, "Content-Length"):
			if head.length >= 0 { // twice: http.ReadResponse decides
				return head, false
			}
			if head.length, valid = parseLength(value); !valid {
				return head, false
			}
		case strings.EqualFold(name, "Transfer-Encoding"), strings.EqualFold(name, "Trailer"):
			return head, false
		case strings.EqualFold(name, "Connection"):
			conn = append(conn, value)
		}
	}
	if head.length < 0 {
		return head, false
	}
	head.close = hasToken(conn, "close")

	// Second pass: fill h.
	values := make([]string, n)
	var added [maxPlainFields]string
	nadded := 0
	for i, s := 0, fields; s != ""; i++ {
		var line string
		line, s, _ = strings.Cut(s, "\r\n")
		name, value, _ := splitField(line)
		k := textproto.CanonicalMIMEHeaderKey(name)
		if hopByHop(k, conn) || k == "Set-Cookie" && rt.isSessionCookie(setCookieName(value)) {
			continue
		}
		values[i] = value
		repeated := slices.Contains(added[:nadded], k)
		if !repeated {
			added[nadded] = k
			nadded++
		}
		addBackendHeader(h, k, values[i:i+1:i+1], repeated)
	}
	br.Discard(end + 4)
	return head, true
}

// addBackendHeader puts a back end's header field into the client's
// response header h, which may hold headers of the proxy's own (a session
// cookie just set, the virtual proxy's additional headers, which are set
// again afterwards): the back end's values replace the proxy's, except
// that cookies add up. repeated says h[k] holds the back end's own values
// already, which vv then joins.
func addBackendHeader(h http.Header, k string, vv []string, repeated bool) {
	if old := h[k]; len(old) > 0 && (repeated || k == "Set-Cookie") {
		vv = append(old[:len(old):len(old)], vv...)
	}
	h[k] = vv
}

// dropSessionCookies removes from a back end's header (or trailer) h
// every Set-Cookie that would set a session cookie of one of rt's
// virtual proxies (rt may be nil: none). openqps alone sets those: a back
// end that set one could fix a browser's session on any virtual proxy, an
// anonymous one's back end on the others' too. It allocates nothing; h
// is the response's own and is changed in place.
func dropSessionCookies(h http.Header, rt *routes) {
	vv := h["Set-Cookie"]
	if len(vv) == 0 || rt == nil {
		return
	}
	kept := vv[:0]
	for _, v := range vv {
		if !rt.isSessionCookie(setCookieName(v)) {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		delete(h, "Set-Cookie")
		return
	}
	h["Set-Cookie"] = kept
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

// isSessionCookie reports whether name is the session cookie of one of
// rt's virtual proxies, over HTTPS or plain HTTP (the -HTTP name). Names
// are compared regardless of case: some back ends (ASP.NET among them)
// read cookie names so. Nil routes have none.
func (rt *routes) isSessionCookie(name string) bool {
	if rt == nil {
		return false
	}
	for i := range rt.cfg.VirtualProxies {
		vp := rt.cfg.VirtualProxies[i].SessionCookieName
		if strings.EqualFold(name, vp) ||
			len(name) == len(vp)+len("-HTTP") && strings.EqualFold(name[:len(vp)], vp) && strings.EqualFold(name[len(vp):], "-HTTP") {
			return true
		}
	}
	return false
}

// splitField splits a header line into its name and its value without
// the surrounding spaces, and reports whether the line is well formed:
// a token, a colon, and a value without control characters but tab. A
// line that starts with a space (obsolete line folding) is not.
func splitField(line string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(line, ":")
	if !ok || !validHeaderName(name) {
		return "", "", false
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < ' ' && c != '\t' || c == 0x7f {
			return "", "", false
		}
	}
	return name, trimOWS(value), true
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, true
}
