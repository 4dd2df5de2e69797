package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/session/redis/redistest"
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

// storesRedisAt configures the Redis store at addr.
func storesRedisAt(addr string) func(*config.Config) {
	return func(c *config.Config) {
		c.Store.Type = "redis"
		c.Store.Redis.Addresses = []string{addr}
	}
}

func TestStoresRedisNodesShareSessionsAndTickets(t *testing.T) {
	srv := redistest.Start(t)
	a, b := start(t, storesRedisAt(srv.Addr)), start(t, storesRedisAt(srv.Addr))
	ctx := context.Background()

	id := randomHex(16)
	a.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	storesWantUser(t, b, id, "/sessionvp/hub/", "User1")

	// Delete through B's API; A must refuse the cookie within 100 ms.
	browser := a.browser(t)
	a.setCookie(t, browser, "X-Qlik-Session-sessionvp", id)
	if resp, _ := get(t, browser, a.frontURL("/sessionvp/hub/")); resp.StatusCode != http.StatusOK {
		t.Fatalf("session on A before the delete: %d", resp.StatusCode)
	}
	deleted := time.Now()
	if _, err := b.API.DeleteSession(ctx, "sessionvp", id); err != nil {
		t.Fatal(err)
	}
	deadline := deleted.Add(100 * time.Millisecond)
	for {
		resp, _ := get(t, browser, a.frontURL("/sessionvp/hub/"))
		if resp.StatusCode == http.StatusFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session deleted through B still works on A after 100 ms (status %d)", resp.StatusCode)
		}
	}
	t.Logf("delete through B's API refused on A after %s", time.Since(deleted))

	tk, err := a.API.Ticket(ctx, "sessionvp", qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: "User2"})
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := get(t, b.browser(t), b.frontURL("/sessionvp/hub/?qlikTicket="+tk.Ticket))
	if resp.StatusCode != http.StatusFound || len(resp.Cookies()) == 0 {
		t.Fatalf("ticket from A redeemed on B: %d, want 302 with a session cookie", resp.StatusCode)
	}
	if resp, _ := get(t, a.browser(t), a.frontURL("/sessionvp/hub/?qlikTicket="+tk.Ticket)); len(resp.Cookies()) != 0 {
		t.Fatal("ticket redeemed on B was redeemed again on A")
	}
}

func TestStoresRedisOutageIs503AndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	o := start(t, func(c *config.Config) {
		storesRedisAt(srv.Addr)(c)
		c.Metrics.Listen = "127.0.0.1:0"
	})
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	storesWantUser(t, o, id, "/sessionvp/hub/", "User1")
	if status, body := storesReadyz(t, o); status != http.StatusOK {
		t.Fatalf("/readyz with redis up: %d %q", status, body)
	}

	srv.Stop()
	if status, body := storesReadyz(t, o); status != http.StatusServiceUnavailable || !strings.Contains(body, "session store unavailable") {
		t.Fatalf("/readyz with redis down: %d %q, want 503 naming the session store", status, body)
	}
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)
	resp, body := get(t, b, o.frontURL("/sessionvp/hub/"))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "session store unavailable") {
		t.Fatalf("browser request while redis is down: %d %q, want 503 saying the session store is unavailable", resp.StatusCode, body)
	}
	add := `{"UserDirectory":"DOMAIN","UserId":"User2","SessionId":"` + randomHex(16) + `"}`
	resp, body = o.apiCall(t, http.MethodPost, "/qps/sessionvp/session?xrfkey=0123456789abcdef", add, "X-Qlik-Xrfkey", "0123456789abcdef")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"session store unavailable"`) {
		t.Fatalf("API add while redis is down: %d %q, want 503 with a JSON body", resp.StatusCode, body)
	}
	if n := len(o.Backend.requests()); n != 1 {
		t.Fatalf("back end saw %d requests, want only the one before the outage", n)
	}

	srv.Restart() // an empty redis: sessions are gone, the service is back
	fresh := randomHex(16)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := o.API.AddSession(context.Background(), "sessionvp", qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: "User3", SessionId: fresh})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("API still failing 10 s after redis came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	storesWantUser(t, o, fresh, "/sessionvp/hub/", "User3")
	if status, body := storesReadyz(t, o); status != http.StatusOK {
		t.Fatalf("/readyz after redis came back: %d %q", status, body)
	}
}

// storesReadyz asks the operations listener whether openqps is ready.
func storesReadyz(t *testing.T, o *openqps) (int, string) {
	t.Helper()
	resp, body := get(t, &http.Client{Timeout: 10 * time.Second}, "http://"+o.MetricsAddr+"/readyz")
	return resp.StatusCode, body
}

// TestStoresRedisWebsocketClosesWhenDeletedOnTheOtherNode: the session
// ends through node B's API; its websocket on node A gets QPS's notice
// and closes (Redis Pub/Sub carries the event from B to A).
func TestStoresRedisWebsocketClosesWhenDeletedOnTheOtherNode(t *testing.T) {
	srv := redistest.Start(t)
	echo := pxNewEchoServer(t)
	node := func(c *config.Config) {
		storesRedisAt(srv.Addr)(c)
		pxWebsocketVP(echo)(c)
	}
	a, b := start(t, node), start(t, node)
	id := randomHex(16)
	a.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	ws, resp, body := pxDialWS(t, a, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+id)
	if ws == nil {
		t.Fatalf("upgrade: %d %s", resp.StatusCode, body)
	}
	ws.send(t, "before")
	ws.read(t)
	if _, err := b.API.LogoutUser(t.Context(), "sessionvp", "DOMAIN", "User1"); err != nil {
		t.Fatal(err)
	}
	ws.expectNotice(t, "OnSessionLoggedOut")
}
