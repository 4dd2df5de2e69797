package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestPersonalAPIOffersLoginOnlyForOwnTargets: GET /qps/user?targetUri=
// answers a browser without a session with QPS's loginUri when the target
// is on this proxy, and the ticket that login yields returns the browser
// there; a target elsewhere gets no loginUri.
func TestPersonalAPIOffersLoginOnlyForOwnTargets(t *testing.T) {
	o := start(t, nil)
	own := o.frontURL("/sessionvp/hub/sheet?x=1")
	for target, wantLogin := range map[string]bool{
		own:                                   true,
		"/sessionvp/hub/":                     true,
		"https://evil.example/":               false,
		"//evil.example/":                     false,
		"https://localhost@evil.example/":     false,
		"http://" + o.FrontendAddr + "/hub/":  false, // plain http from an https page
		"javascript:alert(document.cookie)//": false,
	} {
		resp, body := get(t, o.browser(t), o.frontURL("/sessionvp/qps/user?targetUri="+url.QueryEscape(target)))
		var user struct {
			Session  string `json:"session"`
			LoginURI string `json:"loginUri"`
		}
		if err := json.Unmarshal([]byte(body), &user); err != nil || resp.StatusCode != http.StatusOK || user.Session != "inactive" {
			t.Fatalf("%s: %d %s", target, resp.StatusCode, body)
		}
		if got := user.LoginURI != ""; got != wantLogin {
			t.Errorf("targetUri %s: loginUri %q, want one: %v", target, user.LoginURI, wantLogin)
			continue
		}
		if !wantLogin {
			continue
		}
		login, err := url.Parse(user.LoginURI)
		if err != nil || !strings.HasPrefix(user.LoginURI, loginModuleURI+"?") {
			t.Fatalf("loginUri %q, want the login module", user.LoginURI)
		}
		tk, err := o.API.Ticket(context.Background(), "sessionvp", userReqTarget("DOMAIN", "User1", login.Query().Get("targetId")))
		if err != nil {
			t.Fatal(err)
		}
		if tk.TargetUri == nil || !strings.HasPrefix(*tk.TargetUri, o.frontURL("/sessionvp/hub/")) {
			t.Errorf("targetUri %s came back as TargetUri %s", target, ticketDeref(tk.TargetUri))
		}
	}
}
