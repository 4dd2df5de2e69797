package proxy

import (
	"crypto/ecdsa"
	"crypto/rsa"
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

// FuzzParseJWKS feeds key sets to parseJWKS: no panic, and every key it
// keeps is an RSA or ECDSA public key.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","use":"sig","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := parseJWKS(body)
		if err == nil && len(keys) == 0 {
			t.Fatal("an empty key set parsed without error")
		}
		for kid, k := range keys {
			switch k.(type) {
			case *rsa.PublicKey, *ecdsa.PublicKey:
			default:
				t.Fatalf("kid %q: kept a %T", kid, k)
			}
		}
	})
}
