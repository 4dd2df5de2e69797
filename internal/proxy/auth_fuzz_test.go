package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/openqps/openqps/internal/config"
)

// FuzzVerifyJWT feeds arbitrary bearer tokens to the verifier: it must
// never panic, and nothing but a token signed with the configured key may
// pass; whatever passes names a clean user.
func FuzzVerifyJWT(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	cfg := &config.JWT{Key: &key.PublicKey, UserIDClaim: "sub", UserDirectoryClaim: "dir", AttributeClaims: map[string]string{"groups": "Group"}, Audience: "qlik"}
	sign := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(key)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	good := sign(jwt.MapClaims{"sub": "alice", "dir": "ACME", "aud": "qlik", "exp": now.Add(time.Hour).Unix(), "groups": []any{"a", "b"}})
	f.Add(good)
	f.Add(sign(jwt.MapClaims{"sub": `a\b`, "dir": "ACME", "aud": "qlik", "exp": now.Add(time.Hour).Unix()}))
	f.Add(sign(jwt.MapClaims{"sub": "alice", "dir": "ACME", "aud": []any{"x", "qlik"}, "exp": now.Add(-time.Hour).Unix()}))
	f.Add(sign(jwt.MapClaims{"sub": "alice", "dir": "ACME", "aud": "qlik", "exp": now.Add(time.Hour).Unix(), "iat": now.Add(time.Hour).Unix()}))
	f.Add(sign(jwt.MapClaims{"sub": "alice", "dir": "ACME", "aud": "qlik", "exp": 253402214400.0}))
	crit := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "alice", "dir": "ACME", "aud": "qlik", "exp": now.Add(time.Hour).Unix()})
	crit.Header["crit"] = []string{"b64"}
	if s, err := crit.SignedString(key); err == nil {
		f.Add(s)
	}
	f.Add(good[:len(good)-4])
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		dir, user, attrs, err := verifyJWT(cfg, nil, token, func() time.Time { return now })
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty reason")
			}
			return
		}
		if token != good && !strings.HasPrefix(token, good[:strings.LastIndexByte(good, '.')]) {
			// Not our signed content: only a forgery could pass.
			t.Fatalf("token %q passed as %s\\%s", token, dir, user)
		}
		for _, v := range []string{dir, user} {
			if v == "" || v != strings.TrimSpace(v) || strings.ContainsAny(v, "\\\x00\r\n") {
				t.Fatalf("unclean identity %q\\%q", dir, user)
			}
		}
		for _, a := range attrs {
			if strings.ContainsAny(a.Value, "\x00\r\n") {
				t.Fatalf("unclean attribute %q", a.Value)
			}
		}
	})
}

// FuzzHeaderUser feeds arbitrary patterns and header values to the header
// parser: no panic, and a value that passes is exactly the pattern filled
// with a clean directory and user id.
func FuzzHeaderUser(f *testing.F) {
	f.Add(`$ud\$id`, `ACME\alice`)
	f.Add(`$id@$ud`, `alice@corp@ACME`)
	f.Add(`[$ud]:$id;`, `[ACME]:bob;`)
	f.Add(`$ud\$id`, `\`)
	f.Add(`$ud\$id`, " ACME \\ alice ")
	f.Add(`$ud$id`, `x`)
	f.Fuzz(func(t *testing.T, pattern, value string) {
		pat, err := config.ParseUserPattern(pattern)
		if err != nil {
			return
		}
		vp := &virtualProxy{cfg: &config.VirtualProxy{Auth: config.Auth{
			AuthenticationMethod: config.AuthHeaderDynamic, HeaderName: "X-Remote-User", DynamicUserDirectory: pattern,
		}}, userPattern: pat}
		dir, user, err := vp.headerUser([]string{value})
		if err != nil {
			return
		}
		for _, v := range []string{dir, user} {
			if v == "" || v != strings.TrimSpace(v) || strings.ContainsAny(v, "\\\x00\r\n\x7f") || len(v) > 256 {
				t.Fatalf("unclean identity %q\\%q from %q", dir, user, value)
			}
		}
		if !strings.HasPrefix(value, pat.Prefix) || !strings.HasSuffix(value, pat.Suffix) || !strings.Contains(value, dir) || !strings.Contains(value, user) {
			t.Fatalf("%q from %q does not fit %q", dir+`\`+user, value, pattern)
		}
	})
}
