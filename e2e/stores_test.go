package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/qpsapi"
)

// storesEmbeddedIn configures the embedded durable store in dir.
func storesEmbeddedIn(dir string) func(*config.Config) {
	return func(c *config.Config) { c.DataDir, c.Store.Type = dir, "embedded" }
}

// storesWantUser requests path with the session cookie and requires the
// back end to see user.
func storesWantUser(t *testing.T, o *openqps, id, path, user string) {
	t.Helper()
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)
	resp, body := get(t, b, o.frontURL(path))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "user=UserDirectory=DOMAIN; UserId="+user) {
		t.Fatalf("GET %s with the session: %d %q, want the back end as %s", path, resp.StatusCode, body, user)
	}
}

func TestStoresEmbeddedSessionsAndTicketsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	first := start(t, storesEmbeddedIn(dir))
	ctx := context.Background()
	id := randomHex(16)
	first.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	gone := randomHex(16)
	first.addSession(t, "sessionvp", "DOMAIN", "User2", gone)
	if _, err := first.API.DeleteSession(ctx, "sessionvp", gone); err != nil {
		t.Fatal(err)
	}
	tk, err := first.API.Ticket(ctx, "sessionvp", qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: "User3"})
	if err != nil {
		t.Fatal(err)
	}
	first.API.CloseIdleConnections()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	second := start(t, storesEmbeddedIn(dir))
	storesWantUser(t, second, id, "/sessionvp/hub/", "User1")
	o := second
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", gone)
	if resp, _ := get(t, b, o.frontURL("/sessionvp/hub/")); resp.StatusCode != http.StatusFound {
		t.Fatalf("session deleted before the restart: %d, want 302 to the login module", resp.StatusCode)
	}
	resp, _ := get(t, o.browser(t), o.frontURL("/sessionvp/hub/?qlikTicket="+tk.Ticket))
	if resp.StatusCode != http.StatusFound || len(resp.Cookies()) == 0 {
		t.Fatalf("ticket issued before the restart: %d, want 302 with a session cookie", resp.StatusCode)
	}
	if resp, _ := get(t, o.browser(t), o.frontURL("/sessionvp/hub/?qlikTicket="+tk.Ticket)); len(resp.Cookies()) != 0 {
		t.Fatalf("ticket redeemed twice")
	}
}

func TestStoresMaxSessionsIs429(t *testing.T) {
	for _, store := range []string{"memory", "embedded"} {
		t.Run(store, func(t *testing.T) {
			o := start(t, func(c *config.Config) { c.Store.Type, c.Store.MaxSessions = store, 2 })
			o.addSession(t, "sessionvp", "DOMAIN", "User1", randomHex(16))
			o.addSession(t, "sessionvp", "DOMAIN", "User2", randomHex(16))
			body := `{"UserDirectory":"DOMAIN","UserId":"User3","SessionId":"` + randomHex(16) + `"}`
			resp, text := o.apiCall(t, http.MethodPost, "/qps/sessionvp/session?xrfkey=0123456789abcdef", body,
				"X-Qlik-Xrfkey", "0123456789abcdef")
			var e struct{ Error, Detail string }
			if resp.StatusCode != http.StatusTooManyRequests || json.Unmarshal([]byte(text), &e) != nil ||
				e.Error != "session store full" || !strings.Contains(e.Detail, "store.max_sessions") {
				t.Fatalf("add beyond store.max_sessions: %d %s, want 429 with a JSON body naming the setting", resp.StatusCode, text)
			}
		})
	}
}
