package demo

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/openqps/openqps/internal/config"
)

func TestDemoConfigServesItsVirtualProxiesFromTheHub(t *testing.T) {
	d, err := Start(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c := d.Config()
	if c.Metrics.Listen != MetricsListen {
		t.Errorf("demo metrics on %q", c.Metrics.Listen)
	}
	for prefix, login := range map[string]string{"": SessionLoginPath, "sessionvp": SessionLoginPath, "ticketvp": TicketLoginPath} {
		vp, ok := c.VirtualProxy(prefix)
		if !ok {
			t.Fatalf("demo lacks virtual proxy %q", prefix)
		}
		if vp.SessionCookieName != config.CookieName(prefix) || vp.AuthenticationModuleRedirectURI != login {
			t.Errorf("%q: cookie %q, login %q", prefix, vp.SessionCookieName, vp.AuthenticationModuleRedirectURI)
		}
		if len(vp.Backends) != 1 || vp.Backends[0] != d.HubURL {
			t.Errorf("%q: back ends %v, want the hub %s", prefix, vp.Backends, d.HubURL)
		}
	}
	resp, err := http.Get(d.HubURL + "/hub/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "user-id") {
		t.Errorf("the hub did not answer with its page: %d %.200s", resp.StatusCode, body)
	}
}
