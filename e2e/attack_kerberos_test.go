package e2e

import (
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/openqps/openqps/internal/kdctest"
)

// Attacks on Windows authentication: every token comes from the real
// KDC (or is made from a real ticket and session key, as a client with a
// wrong clock would make it) or is a well-known wire message (NTLM's
// NEGOTIATE_MESSAGE); none reaches the back end.

// ntlmNegotiate is an NTLM NEGOTIATE_MESSAGE as Windows sends it first.
const ntlmNegotiate = "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw=="

// attackWindowsRealm adds what the attack rows need to the realm: a user
// whose tickets live one second, and another realm, OTHER.TEST, with its
// own HTTP/localhost.
type attackWindowsRealm struct {
	*windowsRealm
	other *kdctest.KDC
}

func TestAttackTableWindows(t *testing.T) {
	r := startWindowsRealm(t)
	r.AddUser("brief", winPassword)
	r.Kadmin("modprinc -maxlife \"1 second\" brief@" + winRealm)
	other := kdctest.Start(t, "OTHER.TEST")
	other.AddUser(winUser, winPassword)
	other.AddService(winSPN)
	// A keytab shared with another service, as a host keytab often is:
	// holding HTTP/other.test's key must not make its tickets good here.
	r.keytab = r.Keytab("shared.keytab", winSPN, "HTTP/other.test")
	ar := &attackWindowsRealm{windowsRealm: r, other: other}
	o := startWindows(t, r, "      max_clock_skew: 1s\n")
	alice := r.krbClient(t, winUser, winPassword)

	valid := negotiate(t, alice, winSPN)
	b64 := strings.TrimPrefix(valid, "Negotiate ")
	raw, _ := base64.StdEncoding.DecodeString(b64)
	const (
		unauthorized = http.StatusUnauthorized
		bad          = http.StatusBadRequest
	)
	get := func(headers ...string) string {
		return "GET /win/hub/{mark} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: " + windowsUA + "\r\nAccept: text/html\r\n" + strings.Join(headers, "") + "Connection: close\r\n\r\n"
	}
	noLoop := func(t *testing.T, resp *http.Response, body string) {
		t.Helper()
		if v := resp.Header.Get("WWW-Authenticate"); v != "" && v != "Negotiate oQcwBaADCgEC" {
			t.Errorf("a refused token got a new challenge %q: the browser would loop", v)
		}
	}
	ntlmPage := func(t *testing.T, resp *http.Response, body string) {
		t.Helper()
		noLoop(t, resp, body)
		if resp.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("an NTLM answer got WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
		}
		if !strings.Contains(body, "NTLM is not supported") || !strings.Contains(body, "relay") {
			t.Errorf("the page does not say NTLM is refused and why: %.300q", body)
		}
	}
	// why checks that a row was refused for its own reason, not for a
	// mistake in the row.
	why := func(reason string) func(*testing.T, *http.Response, string) {
		return func(t *testing.T, resp *http.Response, body string) {
			t.Helper()
			noLoop(t, resp, body)
			if !strings.Contains(body, reason) {
				t.Errorf("refused, but not because %q: %.400q", reason, body)
			}
		}
	}
	rows := []attackRow{
		{name: "garbage Negotiate token", raw: get("Authorization: Negotiate " + base64.StdEncoding.EncodeToString([]byte("not a token {mark}")) + "\r\n"), want: []int{bad}, check: noLoop},
		{name: "Negotiate token not base64", raw: get("Authorization: Negotiate %%%{mark}\r\n"), want: []int{bad}, check: noLoop},
		{name: "empty Negotiate token", raw: get("Authorization: Negotiate\r\n"), want: []int{bad}, check: noLoop},
		{name: "truncated Negotiate token", raw: get("Authorization: Negotiate " + base64.StdEncoding.EncodeToString(raw[:len(raw)/2]) + "\r\n"), want: []int{bad}, check: why("truncated")},
		{name: "Negotiate token with a flipped byte", raw: get("Authorization: Negotiate " + base64.StdEncoding.EncodeToString(flip(raw, len(raw)-20)) + "\r\n"), want: []int{bad, unauthorized}, check: noLoop},
		{name: "oversized Negotiate token", raw: get("Authorization: Negotiate " + strings.Repeat("QUFB", 70<<10/4) + "\r\n"), want: []int{bad, http.StatusRequestHeaderFieldsTooLarge}, check: noLoop},
		{name: "SPNEGO offering no mechanism", raw: get("Authorization: Negotiate " + spnegoInit(t, nil, nil) + "\r\n"), want: []int{bad}, check: noLoop},
		{name: "two Authorization headers", raw: get("Authorization: Negotiate "+b64+"\r\n", "Authorization: Negotiate "+b64+"\r\n"), want: []int{bad}, check: noLoop},
		{name: "NTLM in Negotiate", raw: get("Authorization: Negotiate " + ntlmNegotiate + "\r\n"), want: []int{http.StatusForbidden}, check: ntlmPage},
		{name: "NTLM scheme", raw: get("Authorization: NTLM " + ntlmNegotiate + "\r\n"), want: []int{http.StatusForbidden}, check: ntlmPage},
		{name: "NTLM inside SPNEGO", raw: get("Authorization: Negotiate " + spnegoInit(t, []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 311, 2, 2, 10}}, mustB64(ntlmNegotiate)) + "\r\n"), want: []int{http.StatusForbidden}, check: ntlmPage},
		{name: "ticket for another service principal", setup: ar.tokenFor(alice, "HTTP/other.test"), raw: get("Authorization: {token}\r\n"), want: []int{unauthorized}, check: why("not for HTTP/localhost@ACME.TEST")},
		{name: "ticket from another realm", setup: ar.otherRealmToken, raw: get("Authorization: {token}\r\n"), want: []int{unauthorized}, check: why("issued in realm OTHER.TEST")},
		{name: "replayed authenticator", setup: ar.usedToken(o, alice), raw: get("Authorization: {token}\r\n"), want: []int{unauthorized}, check: why("already used")},
		{name: "authenticator beyond the clock skew", setup: ar.skewedToken(alice, -10*time.Minute), raw: get("Authorization: {token}\r\n"), want: []int{unauthorized}, check: why("from openqps&#39;s clock")},
		{name: "authenticator from the future", setup: ar.skewedToken(alice, 10*time.Minute), raw: get("Authorization: {token}\r\n"), want: []int{unauthorized}, check: why("from openqps&#39;s clock")},
		{name: "expired ticket", setup: ar.expiredToken, raw: get("Authorization: {token}\r\n"), want: []int{unauthorized}, check: why("has expired")},
		{name: "Negotiate token for a non-windows virtual proxy", raw: "GET /hub/{mark} HTTP/1.1\r\nHost: {host}\r\nAuthorization: " + valid + "\r\nConnection: close\r\n\r\n", want: []int{http.StatusFound}},
	}
	runAttackRows(t, o, nil, rows)
}

// TestAttackWindowsOverHTTP2 sends the refused token shapes over HTTP/2.
func TestAttackWindowsOverHTTP2(t *testing.T) {
	r := startWindowsRealm(t)
	o := startWindows(t, r, "")
	alice := r.krbClient(t, winUser, winPassword)
	ar := &attackWindowsRealm{windowsRealm: r}
	other := ar.tokenFor(alice, "HTTP/other.test")(t, o)["{token}"]
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.Certs.CAPool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		name, auth string
		want       int
	}{
		{"garbage", "Negotiate " + base64.StdEncoding.EncodeToString([]byte("garbage")), 400},
		{"NTLM", "Negotiate " + ntlmNegotiate, 403},
		{"NTLM scheme", "NTLM " + ntlmNegotiate, 403},
		{"another service principal", other, 401},
		{"replay", ar.usedToken(o, alice)(t, o)["{token}"], 401},
	}
	for i, c := range cases {
		mark := "zqwin" + randomHex(3) + string(rune('a'+i))
		req, _ := http.NewRequest(http.MethodGet, o.frontURL("/win/hub/"+mark), nil)
		req.Header.Set("Authorization", c.auth)
		req.Header.Set("User-Agent", windowsUA)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s: spoke %s, want HTTP/2", c.name, resp.Proto)
		}
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
		attackNeverReachedBackend(t, o, mark, false)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x5a
	return c
}

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// spnegoInit is the base64 of a NegTokenInit offering mechs with token.
func spnegoInit(t *testing.T, mechs []asn1.ObjectIdentifier, token []byte) string {
	t.Helper()
	st := spnego.SPNEGOToken{Init: true, NegTokenInit: spnego.NegTokenInit{MechTypes: mechs, MechTokenBytes: token}}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// tokenFor is a Negotiate header with cl's ticket for spn.
func (ar *attackWindowsRealm) tokenFor(cl *client.Client, spn string) func(*testing.T, *openqps) map[string]string {
	return func(t *testing.T, _ *openqps) map[string]string {
		return map[string]string{"{token}": negotiate(t, cl, spn)}
	}
}

// otherRealmToken is alice@OTHER.TEST's ticket for HTTP/localhost of
// OTHER.TEST, whose key openqps does not hold.
func (ar *attackWindowsRealm) otherRealmToken(t *testing.T, _ *openqps) map[string]string {
	cl := (&windowsRealm{KDC: ar.other}).krbClient(t, winUser, winPassword)
	return map[string]string{"{token}": negotiate(t, cl, winSPN)}
}

// usedToken is a token openqps has already accepted once.
func (ar *attackWindowsRealm) usedToken(o *openqps, cl *client.Client) func(*testing.T, *openqps) map[string]string {
	return func(t *testing.T, _ *openqps) map[string]string {
		token := negotiate(t, cl, winSPN)
		resp, _ := get(t, o.browser(t), o.frontURL("/win/hub/first-use"), "Authorization", token)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the token's first use: status %d, want 200", resp.StatusCode)
		}
		return map[string]string{"{token}": token}
	}
}

// skewedToken is a token with a real ticket and session key whose
// authenticator carries the client's clock off by skew, as a client with
// a wrong clock sends it.
func (ar *attackWindowsRealm) skewedToken(cl *client.Client, skew time.Duration) func(*testing.T, *openqps) map[string]string {
	return func(t *testing.T, _ *openqps) map[string]string {
		tkt, key, err := cl.GetServiceTicket(winSPN)
		if err != nil {
			t.Fatal(err)
		}
		k5, err := spnego.NewKRB5TokenAPREQ(cl, tkt, key, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		auth, err := types.NewAuthenticator(cl.Credentials.Domain(), cl.Credentials.CName())
		if err != nil {
			t.Fatal(err)
		}
		auth.CTime = auth.CTime.Add(skew)
		auth.Cksum = types.Checksum{CksumType: chksumtype.GSSAPI, Checksum: make([]byte, 24)}
		auth.Cksum.Checksum[0] = 16
		if k5.APReq, err = messages.NewAPReq(tkt, key, auth); err != nil {
			t.Fatal(err)
		}
		mech, err := k5.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"{token}": "Negotiate " + spnegoInit(t, []asn1.ObjectIdentifier{gssapi.OIDKRB5.OID()}, mech)}
	}
}

// expiredToken is a token of user brief, whose tickets the KDC issues for
// one second, presented once openqps's one second of allowed clock skew
// past that has gone by. gokrb5 checks tickets against the wall clock,
// which a test cannot inject, so the test waits for that deadline.
func (ar *attackWindowsRealm) expiredToken(t *testing.T, _ *openqps) map[string]string {
	issued := time.Now()
	cl := ar.krbClient(t, "brief", winPassword)
	token := negotiate(t, cl, winSPN)
	time.Sleep(time.Until(issued.Add(1*time.Second + 1*time.Second + 200*time.Millisecond)))
	return map[string]string{"{token}": token}
}

// TestAttackWindowsFormsLogin: cross-site posts of the forms login and a
// password-guessing flood. The user name carries each attempt's marker,
// which no back end may see.
func TestAttackWindowsFormsLogin(t *testing.T) {
	r := startWindowsRealm(t)
	o := startWindows(t, r, "")
	page := o.frontURL("/win/internal_forms_authentication/?target=%2Fwin%2Fhub%2F")
	post := func(b *http.Client, form url.Values, origin string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, page, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		return do(t, b, req)
	}
	token := func(b *http.Client) string {
		_, body := get(t, b, page)
		m := formsCSRFField.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no CSRF token on the form: %.200q", body)
		}
		return m[1]
	}
	t.Run("CSRF", func(t *testing.T) {
		victim := o.browser(t)
		own := token(victim)
		other := token(o.browser(t)) // the attacker's own, valid token
		for _, c := range []struct {
			name   string
			b      *http.Client
			csrf   string
			origin string
		}{
			{"no token, no cookie", o.browser(t), "", ""},
			{"the attacker's token with the victim's cookie", victim, other, ""},
			{"no token with the victim's cookie", victim, "", ""},
			{"the right token from another origin", victim, own, "https://evil.example"},
			{"the right token from a null origin", victim, own, "null"},
		} {
			mark := "zqform" + randomHex(4)
			resp, body := post(c.b, url.Values{"username": {winUser + mark}, "password": {winPassword}, "csrf": {c.csrf}}, c.origin)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "another site") {
				t.Errorf("%s: %d %.200q, want 403", c.name, resp.StatusCode, body)
			}
			attackNeverReachedBackend(t, o, mark, false)
		}
		// The victim's own form still works: the refusals were about
		// the forgery, not a broken form.
		resp, body := post(victim, url.Values{"username": {winUser}, "password": {winPassword}, "csrf": {own}}, "https://"+o.FrontendAddr)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("the genuine post: %d %.200q", resp.StatusCode, body)
		}
	})
	t.Run("password flood", func(t *testing.T) {
		o.Clock.Advance(time.Minute) // a window of its own, after the CSRF test's login
		b := o.browser(t)
		csrf := token(b)
		attempt := func(password string) (*http.Response, string) {
			mark := "zqflood" + randomHex(4)
			resp, body := post(b, url.Values{"username": {winUser}, "password": {password + mark}, "csrf": {csrf}}, "")
			attackNeverReachedBackend(t, o, mark, false)
			return resp, body
		}
		for i := range 5 {
			if resp, body := attempt("guess"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("guess %d: %d %.200q, want 401", i+1, resp.StatusCode, body)
			}
		}
		resp, body := attempt("guess")
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("sixth guess: %d Retry-After %q %.200q, want 429", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		// While limited, the right password gets the same refusal: the
		// limit is no oracle either.
		form := url.Values{"username": {winUser}, "password": {winPassword}, "csrf": {csrf}}
		if resp, _ := post(b, form, ""); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("right password while limited: %d, want 429", resp.StatusCode)
		}
		o.Clock.Advance(time.Minute)
		if resp, body := post(b, form, ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("right password after the window: %d %.200q, want 303", resp.StatusCode, body)
		}
	})
}
