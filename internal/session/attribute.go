package session

import (
	"net/url"
	"strings"
)

// reservedAttributes are the X-Qlik-Security fields that openqps itself
// states for every request (lower case).
var reservedAttributes = []string{"context", "securerequest"}

// ReservedAttribute reports whether an attribute named key would read as
// one of the X-Qlik-Security fields openqps states itself (Context,
// SecureRequest): in any case, and also once or twice percent-decoded,
// as a back end may decode the header's fields. Such an attribute must
// not stand next to openqps's own fields, or a login module, a token or
// a header could choose the Context a back end sees.
func ReservedAttribute(key string) bool {
	for range 3 {
		k := strings.TrimSpace(key)
		for _, r := range reservedAttributes {
			if strings.EqualFold(k, r) {
				return true
			}
		}
		if strings.IndexByte(key, '%') < 0 && strings.IndexByte(key, '+') < 0 {
			return false
		}
		d, err := url.QueryUnescape(key)
		if err != nil || d == key {
			return false
		}
		key = d
	}
	return false
}
