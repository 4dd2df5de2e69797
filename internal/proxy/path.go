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
