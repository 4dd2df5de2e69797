package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseIssueExample(t *testing.T) {
	c, err := Parse([]byte(`
data_dir: openqps-data
frontend:
  listen: ":8443"
api:
  listen: ":4243"
  public_url: ""
tls:
  ca: ""
  cert: ""
  key: ""
virtual_proxies:
  - prefix: sessionvp
    session_cookie_name: X-Qlik-Session-sessionvp
    session_cookie_domain: ""
    session_inactivity_timeout: 30m
    authentication_module_redirect_uri: https://login.example.com/login
    backends: ["http://127.0.0.1:9000"]
`))
	if err != nil {
		t.Fatal(err)
	}
	vp, ok := c.VirtualProxy("sessionvp")
	if !ok || vp.SessionInactivityTimeout != 30*time.Minute || vp.BackendURLs[0].Host != "127.0.0.1:9000" {
		t.Fatalf("%+v", vp)
	}
	if c.Store.Type != "embedded" || c.Sessions.MinIDLength != 16 || c.Sessions.TicketTTL != time.Minute {
		t.Errorf("defaults: %+v %+v", c.Store, c.Sessions)
	}
}

func TestParseErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "frontend:\n  listen: \":1\"\n  lisen: x\n", "line 3: key lisen is not a known key"},
		{"reserved prefix", "virtual_proxies:\n  - prefix: qps\n    backends: [\"http://a\"]\n", "line 2: virtual_proxies[0].prefix: \"qps\" is reserved"},
		{"bad prefix", "virtual_proxies:\n  - prefix: Sales VP\n    backends: [\"http://a\"]\n", "line 2: virtual_proxies[0].prefix"},
		{"no backends", "virtual_proxies:\n  - prefix: a\n", "virtual_proxies[0].backends: name at least one back end"},
		{"bad backend", "virtual_proxies:\n  - prefix: a\n    backends: [\"ftp://x\"]\n", "line 3: virtual_proxies[0].backends[0]"},
		{"duplicate prefix", "virtual_proxies:\n  - prefix: a\n    backends: [\"http://a\"]\n  - prefix: a\n    backends: [\"http://a\"]\n", "line 4: virtual_proxies[1].prefix: \"a\" is already the prefix"},
		{"duplicate cookie", "virtual_proxies:\n  - prefix: a\n    session_cookie_name: C\n    backends: [\"http://a\"]\n  - prefix: b\n    session_cookie_name: C\n    backends: [\"http://a\"]\n", "line 6: virtual_proxies[1].session_cookie_name"},
		{"bad duration", "virtual_proxies:\n  - prefix: a\n    session_inactivity_timeout: soon\n    backends: [\"http://a\"]\n", "line 3"},
		{"bad store", "store:\n  type: sqlite\n", "line 2: store.type: \"sqlite\" is not a store"},
		{"partial tls", "tls:\n  ca: x\n", "line 1: tls: set all of ca, cert and key"},
		{"no virtual proxies", "data_dir: x\n", "virtual_proxies: name at least one virtual proxy"},
		{"bad listen", "api:\n  listen: 4243\n", "line 2: api.listen"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

func TestDefaultCookieNames(t *testing.T) {
	if CookieName("sessionvp") != "X-Qlik-Session-sessionvp" || CookieName("") != "X-Qlik-Session" {
		t.Error("cookie names")
	}
}
