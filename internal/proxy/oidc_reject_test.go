package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// oidcRefusalVP is an OIDC virtual proxy whose provider never answers
// (nothing listens on port 1): what the callback refuses before it needs
// the provider, and the 503 while it is unreachable. The refusals that
// need a real provider are e2e/attack_oidc_test.go's rows.
func oidcRefusalVP(t *testing.T) string {
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("s3cret"), 0o600)
	return plainVP + "    authentication_method: oidc\n    oidc:\n      metadata_uri: http://127.0.0.1:1/.well-known/openid-configuration\n" +
		"      client_id: app\n      client_secret_file: " + secret + "\n      realm: ACME\n"
}

// oidcRefusalRows are the OIDC rows of refusalRows.
func oidcRefusalRows() []refusalRow {
	send := func(target string, header ...string) func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
		return func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			p, logs := refusalFrontEnd(t, okBackend(t), oidcRefusalVP(t), nil)
			return p, logs, clientRequest("GET", target, header...)
		}
	}
	// sealed sends a callback with a state cookie the front end sealed,
	// and state, plus query.
	sealed := func(query string) func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
		return func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			p, logs := refusalFrontEnd(t, okBackend(t), oidcRefusalVP(t), nil)
			r := clientRequest("GET", "/vp/oidcauthn?code=c&state=s"+query)
			key, err := p.oidcKey(&request{r: r})
			if err != nil {
				t.Fatal(err)
			}
			v, err := sealOIDCState(key, oidcState{Prefix: "vp", State: "s", Nonce: "n", Verifier: "v", Target: "/vp/", Expires: time.Now().Add(time.Minute).Unix()})
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Add("Cookie", oidcStateCookieName("vp")+"="+v)
			return p, logs, r
		}
	}
	return []refusalRow{
		{"OIDC provider unreachable", 503, "identity provider unreachable", send("/vp/hub/")},
		{"OIDC callback posted", 405, "method not allowed", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			p, logs, _ := send("/vp/oidcauthn")(t)
			return p, logs, clientRequest("POST", "/vp/oidcauthn?code=c&state=s")
		}},
		{"OIDC callback with two states", 400, "invalid login callback", send("/vp/oidcauthn?code=c&state=a&state=b")},
		{"OIDC callback without a login", 400, "no login in progress", send("/vp/oidcauthn?code=c&state=s")},
		{"OIDC provider refused the login", 403, "login refused by the identity provider", send("/vp/oidcauthn?error=access_denied&error_description=not+assigned&state=s")},
		{"OIDC callback names another issuer", 400, "login from another identity provider", sealed("&iss=https%3A%2F%2Fother.example")},
		{"OIDC logout posted", 405, "method not allowed", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			p, logs, _ := send("/vp/")(t)
			return p, logs, clientRequest("POST", "/vp/qps/logout")
		}},
	}
}
