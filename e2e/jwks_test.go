package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// keyIssuer publishes a JSON Web Key Set over HTTP on 127.0.0.1, as an
// identity provider's jwks_uri does, and counts how often it is fetched.
type keyIssuer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey
	fetches atomic.Int64
}

func newKeyIssuer(t *testing.T) *keyIssuer {
	ki := &keyIssuer{keys: map[string]*rsa.PrivateKey{}}
	ki.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ki.fetches.Add(1)
		ki.mu.Lock()
		var set jose.JSONWebKeySet
		for kid, k := range ki.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		ki.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(ki.srv.Close)
	return ki
}

// rotate replaces the published keys with a new one, kid.
func (ki *keyIssuer) rotate(t *testing.T, kid string) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ki.mu.Lock()
	ki.keys = map[string]*rsa.PrivateKey{kid: k}
	ki.mu.Unlock()
	return k
}

func (o *openqps) jwksToken(t *testing.T, key *rsa.PrivateKey, kid, user string) string {
	now := o.Clock.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": user, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWKSRotationIsPickedUpAndUnknownKidsDoNotFlood(t *testing.T) {
	ki := newKeyIssuer(t)
	keyA := ki.rotate(t, "a")
	o := startWithVPs(t, `
  - prefix: jwks
    session_cookie_name: X-Qlik-Session-jwks
    backends: ["{backend}"]
    authentication_method: jwt
    jwt:
      jwks_uri: `+ki.srv.URL+`/keys
      user_id_claim: sub
      user_directory_claim: "[ACME]"
`)
	call := func(token string) int {
		t.Helper()
		resp, _ := get(t, o.apiClient(), o.frontURL("/jwks/x"), "Authorization", "Bearer "+token)
		return resp.StatusCode
	}
	if got := call(o.jwksToken(t, keyA, "a", "alice")); got != http.StatusOK {
		t.Fatalf("token of the published key: %d", got)
	}
	if got := o.Backend.last(t).Header.Get("X-Qlik-User"); got != "UserDirectory=ACME; UserId=alice" {
		t.Fatalf("X-Qlik-User %q", got)
	}

	// The issuer rotates its key: a token of the new key logs in without
	// a restart, once the refresh interval has passed.
	keyB := ki.rotate(t, "b")
	o.Clock.Advance(2 * time.Second)
	if got := call(o.jwksToken(t, keyB, "b", "bob")); got != http.StatusOK {
		t.Fatalf("token of the rotated key: %d", got)
	}
	if n := ki.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches of the key set, want 2 (first use, rotation)", n)
	}

	// A flood of tokens with random kids: refused, and within one second
	// of openqps's clock they cost the issuer no fetch at all.
	for i := range 50 {
		if got := call(o.jwksToken(t, keyB, "random-"+randomHex(8), "mallory")); got != http.StatusUnauthorized {
			t.Fatalf("token %d with an unknown kid: %d", i, got)
		}
	}
	if n := ki.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after a flood of unknown kids within a second, want still 2", n)
	}
	// A second later, one more fetch, however many unknown kids come.
	o.Clock.Advance(time.Second)
	for range 20 {
		call(o.jwksToken(t, keyB, "random-"+randomHex(8), "mallory"))
	}
	if n := ki.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches a second later, want 3", n)
	}
	// The old key is gone from the set: its tokens are refused now.
	if got := call(o.jwksToken(t, keyA, "a", "alice")); got != http.StatusUnauthorized {
		t.Fatalf("token of the retired key: %d", got)
	}
}
