package upstream

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
// into h as Request.Into says (see addField), less the hop-by-hop ones and
// those the Connection field names, and less those drop drops (drop may
// be nil). That saves http.ReadResponse's response object, header map and
// parsing on nearly every request.
//
// Anything else it leaves unread and h untouched (ok false) for
// http.ReadResponse, which knows every other case and every error: the
// head is checked whole before h is touched.
func readPlainHead(br *bufio.Reader, h http.Header, drop Filter) (head plainHead, ok bool) {
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
	// the values h gets are slices of it.
	fields := string(rest)

	// First pass: check every field; find the length and the
	// Connection field.
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
	head.close = HasToken(conn, "close")

	// Second pass: fill h.
	values := make([]string, n)
	var added [maxPlainFields]string
	nadded := 0
	for i, s := 0, fields; s != ""; i++ {
		var line string
		line, s, _ = strings.Cut(s, "\r\n")
		name, value, _ := splitField(line)
		k := textproto.CanonicalMIMEHeaderKey(name)
		if HopByHop(k, conn) || drop != nil && drop.DropField(k, value) {
			continue
		}
		values[i] = value
		repeated := slices.Contains(added[:nadded], k)
		if !repeated {
			added[nadded] = k
			nadded++
		}
		addField(h, k, values[i:i+1:i+1], repeated)
	}
	br.Discard(end + 4)
	return head, true
}

// addField puts a back end's field into the caller's header h, which may
// hold fields of the caller's own: the back end's values replace those,
// except that cookies add up. repeated says h[k] holds the back end's own
// values already, which vv then joins.
func addField(h http.Header, k string, vv []string, repeated bool) {
	if old := h[k]; len(old) > 0 && (repeated || k == "Set-Cookie") {
		vv = append(old[:len(old):len(old)], vv...)
	}
	h[k] = vv
}

// CopyFields copies a back end's fields src into the caller's header dst
// as Request.Into says, less the hop-by-hop ones (which it deletes from
// src).
func CopyFields(dst, src http.Header) {
	RemoveHopByHop(src)
	for k, vv := range src {
		addField(dst, k, vv, false)
	}
}

// dropFields removes from h every value drop drops (drop may be nil). It
// allocates nothing; h is changed in place.
func dropFields(h http.Header, drop Filter) {
	if drop == nil {
		return
	}
	for k, vv := range h {
		var kept []string // nil while nothing was dropped
		for i, v := range vv {
			if drop.DropField(k, v) {
				if kept == nil {
					kept = vv[:i]
				}
				continue
			}
			if kept != nil {
				kept = append(kept, v)
			}
		}
		switch {
		case kept == nil:
		case len(kept) == 0:
			delete(h, k)
		default:
			h[k] = kept
		}
	}
}

// hopHeaders are the hop-by-hop fields of RFC 9110 §7.6.1: they describe
// one connection and are never forwarded.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// HopByHop reports whether the field k (canonical) describes one
// connection (RFC 9110 §7.6.1): a hop-by-hop field, or one named by the
// Connection field's values conn.
func HopByHop(k string, conn []string) bool {
	return hopHeaders[k] || len(conn) > 0 && HasToken(conn, k)
}

// RemoveHopByHop deletes h's hop-by-hop fields.
func RemoveHopByHop(h http.Header) {
	conn := h["Connection"]
	for k := range h {
		if HopByHop(k, conn) {
			delete(h, k)
		}
	}
}

// HasToken reports whether the comma-separated field values hold token,
// case-insensitively (RFC 9110 §5.6.1 lists). It allocates nothing.
func HasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
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

// hasCTL reports whether s holds an ASCII control character.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// validHeaderName reports whether k is an RFC 9110 token.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !tokenByte[k[i]] {
			return false
		}
	}
	return true
}

// tokenByte marks the bytes of an RFC 9110 token.
var tokenByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

// headerValue is v as net/http writes it: each CR and LF becomes a space,
// and leading and trailing spaces and tabs are dropped.
func headerValue(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			v = newlineToSpace.Replace(v)
			break
		}
	}
	return trimOWS(v)
}

// trimOWS drops leading and trailing spaces and tabs.
func trimOWS(v string) string {
	for v != "" && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for v != "" && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")
