package proxy

import (
	"strings"
	"testing"
	"time"
)

// FuzzOIDCCallback feeds the callback's query and state cookie to their
// parsers: no panic, a parsed query holds no control character, and only
// a cookie sealed under the key opens.
func FuzzOIDCCallback(f *testing.F) {
	key := make([]byte, 32)
	want := oidcState{Prefix: "p", State: "s", Nonce: "n", Verifier: "v", Target: "/", Expires: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()}
	sealed, err := sealOIDCState(key, want)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("code=abc&state=xyz", sealed)
	f.Add("error=access_denied&error_description=no%0a&state=1", "")
	f.Add("state=a&state=b&code=c", sealed[:len(sealed)-2])
	f.Add("code=%zz", "!!!")
	f.Fuzz(func(t *testing.T, query, cookie string) {
		if q, err := parseCallbackQuery(query); err == nil {
			for _, v := range []string{q.Code, q.State, q.Issuer, q.Error, q.ErrorDescription} {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("control character passed: %q", v)
				}
			}
			if q.State == "" && q.Error == "" {
				t.Fatal("a callback without state or error passed")
			}
		}
		st, err := openOIDCState(key, cookie)
		// Each fuzzing process seals its own seed (a random nonce): what
		// opens must be that state, the only one sealed under key.
		if err == nil && st != want {
			t.Fatalf("a cookie openqps did not seal opened: %q -> %+v", cookie, st)
		}
	})
}
