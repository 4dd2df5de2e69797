package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/demo"
	"github.com/openqps/openqps/internal/server"
)

// TestDemoLogsInThroughBothFlows drives the no-configuration demo as a
// browser would: the hub sends it to the demo login module, the form
// logs it in through the session API (sessionvp) or the ticket API
// (ticketvp), and the hub then shows the user.
func TestDemoLogsInThroughBothFlows(t *testing.T) {
	dm, err := demo.Start(testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dm.Close)
	cfg := dm.Config()
	cfg.DataDir = t.TempDir()
	cfg.Frontend.Listen = "127.0.0.1:0"
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Store.Type = "memory"
	srv, err := server.Start(context.Background(), server.Options{Config: cfg, Log: testLogger(t), Local: dm.Local()})
	if err != nil {
		t.Fatal(err)
	}
	dm.Connect(srv.APIAddr, srv.Certs.ClientTLS())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	o := &openqps{Server: srv}
	for _, vp := range []string{"sessionvp", "ticketvp"} {
		b := o.browser(t)
		resp, _ := get(t, b, o.frontURL("/"+vp+"/hub/sheet?x=1"))
		login, err := resp.Location()
		if resp.StatusCode != http.StatusFound || err != nil || !strings.Contains(login.Path, "/demo-login/") {
			t.Fatalf("%s: not sent to the demo login: %d %v", vp, resp.StatusCode, login)
		}
		resp, page := get(t, b, login.String())
		if resp.StatusCode != 200 || !strings.Contains(page, "<form") {
			t.Fatalf("%s: login form: %d", vp, resp.StatusCode)
		}
		form := url.Values{
			"proxyRestUri": {login.Query().Get("proxyRestUri")}, "targetId": {login.Query().Get("targetId")},
			"directory": {"CORP"}, "user": {"alice"}, "groups": {"Sales, Ops"},
		}
		req, _ := http.NewRequest(http.MethodPost, login.String(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body := do(t, b, req)
		// Follow the redirects by hand (the ticket flow has two).
		for i := 0; resp.StatusCode == http.StatusFound && i < 3; i++ {
			next, _ := resp.Location()
			resp, body = get(t, b, next.String())
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%s: after login %d %s", vp, resp.StatusCode, body)
		}
		for _, want := range []string{`id="user-directory">CORP<`, `id="user-id">alice<`, `id="virtual-proxy">` + vp + `<`, "Group=Sales", "Group=Ops"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: hub page lacks %q", vp, want)
			}
		}
		if vp == "ticketvp" && !strings.Contains(body, "/hub/sheet?x=1") {
			t.Errorf("ticketvp: not back at the original URL")
		}
	}
}
