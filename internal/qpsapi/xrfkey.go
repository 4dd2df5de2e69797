package qpsapi

import (
	"errors"
	"net/http"
	"strings"
)

// XrfkeyHeader is the header half of QPS's anti-CSRF key pair.
const XrfkeyHeader = "X-Qlik-Xrfkey"

// CheckXrfkey applies QPS's Xrfkey rule to a request: the query parameter
// (its name matched case-insensitively: xrfkey, Xrfkey) and the header
// X-Qlik-Xrfkey must both be present, equal, and 16 characters of
// [0-9A-Za-z]. The error says which rule failed.
func CheckXrfkey(r *http.Request) error {
	var query string
	found := 0
	for _, kv := range strings.Split(r.URL.RawQuery, "&") {
		name, value, _ := strings.Cut(kv, "=")
		if strings.EqualFold(name, "xrfkey") {
			query = value
			found++
		}
	}
	headers := r.Header.Values(XrfkeyHeader)
	switch {
	case found == 0 && len(headers) == 0:
		return errors.New("XSRF prevention check failed: add the query parameter xrfkey=<16 characters> and the header X-Qlik-Xrfkey with the same value")
	case found == 0:
		return errors.New("XSRF prevention check failed: the query parameter xrfkey is missing (a '#' in the URL cuts the query off)")
	case len(headers) == 0:
		return errors.New("XSRF prevention check failed: the header X-Qlik-Xrfkey is missing")
	case found > 1 || len(headers) > 1:
		return errors.New("XSRF prevention check failed: send exactly one xrfkey query parameter and one X-Qlik-Xrfkey header")
	case query != headers[0]:
		return errors.New("XSRF prevention check failed: the xrfkey query parameter and the X-Qlik-Xrfkey header differ")
	case len(query) != 16:
		return errors.New("XSRF prevention check failed: the xrfkey must be exactly 16 characters")
	}
	for i := 0; i < len(query); i++ {
		c := query[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return errors.New("XSRF prevention check failed: the xrfkey may contain only 0-9, a-z and A-Z")
		}
	}
	return nil
}
