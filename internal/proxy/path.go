package proxy

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// cleanPath checks the request path before anything else looks at it, so
// that a request can never leave its virtual proxy or reach a path the
// configuration does not route (ZeroQlik's /resources/../../qrs shape).
// decoded is r.URL.Path (percent-decoded once by net/http), escaped its
// wire form. Runs of slashes are collapsed; everything that a back end
// could resolve differently from openqps is refused rather than
// "fixed": dot segments (also encoded), encoded slashes and backslashes,
// backslashes, semicolons, control characters and invalid UTF-8.
func cleanPath(decoded, escaped string) (string, error) {
	if decoded == "" || decoded[0] != '/' {
		return "", errors.New("the path must start with /")
	}
	if !utf8.ValidString(decoded) {
		return "", errors.New("the path is not valid UTF-8")
	}
	for i := 0; i < len(decoded); i++ {
		switch c := decoded[i]; {
		case c < 0x20 || c == 0x7f:
			return "", errors.New("the path contains a control character")
		case c == '\\':
			return "", errors.New("the path contains a backslash")
		case c == ';':
			return "", errors.New("the path contains a semicolon (path parameters are not supported)")
		}
	}
	if containsFold(escaped, "%2f") || containsFold(escaped, "%5c") {
		return "", errors.New("the path contains an encoded slash or backslash")
	}
	if hasPercentEscape(decoded) {
		// "%252e%252e" decodes to "%2e%2e", which a back end that decodes
		// once more would read as "..".
		return "", errors.New("the path is percent-encoded twice (it contains %25 followed by two hex digits)")
	}
	clean := decoded
	if strings.Contains(clean, "//") {
		var b strings.Builder
		b.Grow(len(clean))
		for i := 0; i < len(clean); i++ {
			if clean[i] == '/' && i > 0 && clean[i-1] == '/' {
				continue
			}
			b.WriteByte(clean[i])
		}
		clean = b.String()
	}
	if hasDotSegment(clean) {
		return "", errors.New("the path contains a . or .. segment")
	}
	return clean, nil
}

// hasPercentEscape reports whether s, already decoded once, still holds
// a percent escape.
func hasPercentEscape(s string) bool {
	for i := strings.IndexByte(s, '%'); i >= 0 && i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hasDotSegment(p string) bool {
	for len(p) > 0 {
		p = p[1:] // skip "/"
		seg := p
		if i := strings.IndexByte(p, '/'); i >= 0 {
			seg, p = p[:i], p[i:]
		} else {
			p = ""
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// splitPrefix returns the first segment of a clean path and the rest
// (at least "/").
func splitPrefix(p string) (first, rest string) {
	p = p[1:]
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, "/"
}

// checkRequestLine refuses a method or request target that openqps could
// not write into an HTTP/1.1 request line as it came. Over HTTP/1.1,
// net/http has refused most such requests already; over HTTP/2, :method
// and :path arrive as header values, and "GET /../qrs/about?" as a method
// or "/hub/? /../qrs" as a path would put a request line of the client's
// choosing in front of a back end that splits lines leniently, past
// every path rule of openqps. The method must be a name (letters, then
// letters, digits, "-" or "_": every registered method is one), the
// target free of spaces and control characters. Bytes that an HTTP/1.1
// target can carry but RFC 3986 does not allow are escaped on the way
// out instead (upstreamQuery).
func checkRequestLine(method, target string) error {
	if !methodName(method) {
		return errors.New("the method must be a name of letters, digits, - and _ starting with a letter, such as GET or POST")
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return errors.New("the request target contains a space or a control character; percent-encode it (%20)")
		}
	}
	return nil
}

// methodName reports whether m is a plain method name, at most 32 bytes.
func methodName(m string) bool {
	if m == "" || len(m) > 32 || !('A' <= m[0] && m[0] <= 'Z' || 'a' <= m[0] && m[0] <= 'z') {
		return false
	}
	for i := 1; i < len(m); i++ {
		if c := m[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// upstreamQuery is the raw query as written to a back end: every byte
// outside RFC 3986's query set (quotes, angle brackets, braces, "|",
// "\", "^", "`", "#", non-ASCII, and a "%" that starts no escape) is
// percent-encoded, so that every back end reads the query openqps read,
// however leniently it parses. net/http passes the query of a request
// target on verbatim (only the path is re-encoded). A query that needs
// nothing, nearly every one, is returned as it is, without allocating.
func upstreamQuery(raw string) string {
	i := 0
	for i < len(raw) && queryByte(raw, i) {
		i++
	}
	if i == len(raw) {
		return raw
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(raw) + 16)
	b.WriteString(raw[:i])
	for ; i < len(raw); i++ {
		if queryByte(raw, i) {
			b.WriteByte(raw[i])
			continue
		}
		c := raw[i]
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// queryByte reports whether raw[i] may stand in a query as it is (RFC
// 3986 §3.4: pchar, "/" and "?"; a "%" only before two hex digits).
func queryByte(raw string, i int) bool {
	c := raw[i]
	if c == '%' {
		return i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2])
	}
	return queryChar[c]
}

var queryChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~!$&'()*+,;=:@/?", byte(c)) >= 0
	}
	return t
}()
