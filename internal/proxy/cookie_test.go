package proxy

import (
	"slices"
	"testing"
)

// TestSessionCookieNamesAreEveryVirtualProxysBothForms: the routes know
// every virtual proxy's session cookie, over HTTPS and plain HTTP, in any
// ASCII case, and nothing else; the request side strips exactly those.
func TestSessionCookieNamesAreEveryVirtualProxysBothForms(t *testing.T) {
	// Not parallel: AllocsPerRun below.
	rt := newTestProxy(t, `
frontend: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
store: {type: memory}
virtual_proxies:
  - prefix: ""
    backends: ["http://127.0.0.1:1"]
  - prefix: vp
    backends: ["http://127.0.0.1:1"]
  - prefix: own
    session_cookie_name: AppSession
    backends: ["http://127.0.0.1:1"]
`, Options{}).routes.Load()
	for name, want := range map[string]bool{
		"X-Qlik-Session":              true,
		"X-Qlik-Session-HTTP":         true,
		"X-Qlik-Session-vp":           true,
		"x-qlik-session-vp-http":      true,
		"AppSession":                  true,
		"APPSESSION-http":             true,
		"X-Qlik-Session-own":          false, // own has a name of its own
		"X-Qlik-Session-other":        false,
		"X-Qlik-Sessions":             false,
		"X-Qlik-Session-HTTPS":        false,
		"X-Qlik-Session-vp-HTTP-HTTP": false,
		"X-Qli\u212a-Session":         false, // the Kelvin sign is no K to a back end
		"":                            false,
	} {
		if got := rt.isSessionCookieName(name); got != want {
			t.Errorf("isSessionCookieName(%q) = %v, want %v", name, got, want)
		}
		kept := withoutSessionCookies([]string{" " + name + " =1; app=2"}, rt.sessionCookies)
		if stripped := slices.Equal(kept, []string{"app=2"}); stripped != want {
			t.Errorf("Cookie: %s=1; app=2 is sent on as %q: session cookie %v, want %v", name, kept, stripped, want)
		}
	}
	var none *routes
	if none.isSessionCookieName("X-Qlik-Session") {
		t.Error("nil routes have a session cookie")
	}
	if n := testing.AllocsPerRun(100, func() { rt.isSessionCookieName("AppSession-HTTP"); rt.isSessionCookieName("app") }); n != 0 {
		t.Errorf("isSessionCookieName allocates %v times", n)
	}
}
