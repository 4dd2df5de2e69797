package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openqps/openqps/internal/session"
)

// verdictMethod is a login method that answers every request with one
// verdict, as a new method (OIDC, SAML, Windows) would: the test pins what
// the handler does with each kind.
type verdictMethod struct{ v verdict }

func (m verdictMethod) login(*request, verdict) (verdict, error) { return m.v, nil }

// TestHandlerAnswersEachVerdict: a method's verdict is answered by the
// handler alone — an identity is forwarded, a refusal is the JSON body
// with its challenge, an answer is the method's redirect, not cached.
func TestHandlerAnswersEachVerdict(t *testing.T) {
	negotiate := refusal(http.StatusUnauthorized, "not authenticated", "log in to Windows first")
	negotiate.challenge = "Negotiate"
	for _, c := range []struct {
		name      string
		v         verdict
		status    int
		header    string // a header the answer must carry, "Name: value"
		bodyError string
	}{
		{"identity", identity(session.Session{Prefix: "vp", ID: "s1", UserDirectory: "D", UserID: "u"}), http.StatusOK, "", ""},
		{"refused with a challenge", negotiate, http.StatusUnauthorized, "Www-Authenticate: Negotiate", "not authenticated"},
		{"redirect to an identity provider", redirect("https://idp.example/authorize?state=x"), http.StatusFound, "Location: https://idp.example/authorize?state=x", ""},
		{"nothing", verdict{}, http.StatusUnauthorized, "", "not authenticated"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, logs := refusalFrontEnd(t, okBackend(t), plainVP, nil)
			p.routes.Load().byPrefix["vp"].logins.method = verdictMethod{c.v}
			w := httptest.NewRecorder()
			p.ServeHTTP(w, clientRequest(http.MethodGet, "/vp/hub/"))
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.header != "" {
				name, value, _ := strings.Cut(c.header, ": ")
				if got := w.Header().Get(name); got != value {
					t.Errorf("%s: %q, want %q", name, got, value)
				}
			}
			if c.status != http.StatusOK && w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", w.Header().Get("Cache-Control"))
			}
			var body struct{ Error string }
			json.Unmarshal(w.Body.Bytes(), &body)
			if body.Error != c.bodyError {
				t.Errorf("body %s, want error %q", w.Body, c.bodyError)
			}
			want := 0
			if c.bodyError != "" {
				want = 1
			}
			if n, all := logs.events("frontend.rejected"); n != want {
				t.Errorf("%d frontend.rejected lines, want %d: %q", n, want, all)
			}
		})
	}
}

// TestFailedLoginNextToACookieDropsTheCredential: a method's failed login
// (a stale ticket, a used authorization code) next to a valid session
// cookie redirects a GET navigation to the URL without the credential,
// and serves anything else as the cookie's user.
func TestFailedLoginNextToACookieDropsTheCredential(t *testing.T) {
	store := session.NewMemory()
	t.Cleanup(func() { store.Close() })
	p, _ := refusalFrontEnd(t, okBackend(t), plainVP, store)
	cookie := "X-Qlik-Session-vp-HTTP=" + addSession(t, store, "vp")
	p.routes.Load().byPrefix["vp"].logins.method = verdictMethod{verdict{kind: failedLogin, status: http.StatusUnauthorized, error: "code refused", reason: "the code was used"}}

	w := httptest.NewRecorder()
	p.ServeHTTP(w, clientRequest(http.MethodGet, "/vp/hub/?x=1", "Cookie", cookie))
	if w.Code != http.StatusFound || w.Header().Get("Location") != "/vp/hub/?x=1" {
		t.Errorf("GET: %d to %q, want 302 to its own URL", w.Code, w.Header().Get("Location"))
	}
	w = httptest.NewRecorder()
	p.ServeHTTP(w, clientRequest(http.MethodPost, "/vp/hub/", "Cookie", cookie))
	if w.Code != http.StatusOK {
		t.Errorf("POST: %d %s, want the cookie's user served", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	p.ServeHTTP(w, clientRequest(http.MethodPost, "/vp/hub/"))
	var body struct{ Error string }
	if json.Unmarshal(w.Body.Bytes(), &body); w.Code != http.StatusUnauthorized || body.Error != "code refused" {
		t.Errorf("POST without a cookie: %d %s, want the failed login's 401", w.Code, w.Body)
	}
}
