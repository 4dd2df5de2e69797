package config

import (
	"strings"
	"testing"
)

func TestProxyingErrorsNameKeyAndLine(t *testing.T) {
	vp := "virtual_proxies:\n  - prefix: a\n    backends: [\"http://a\"]\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"policy", vp + "    load_balancing: random\n", `virtual_proxies[0].load_balancing: "random" is not a policy`},
		{"same site", vp + "    session_cookie_same_site: loose\n", `virtual_proxies[0].session_cookie_same_site: "loose"`},
		{"secure", vp + "    session_cookie_secure: yes please\n", `virtual_proxies[0].session_cookie_secure: "yes please"`},
		{"none without secure", vp + "    session_cookie_same_site: none\n    session_cookie_secure: never\n", "none needs a Secure cookie"},
		{"header name", vp + "    additional_response_headers: {\"Bad Name\": x}\n", `"Bad Name" is not a valid header name`},
		{"header value", vp + "    additional_response_headers: {X-A: \"a\\r\\nSet-Cookie: x=1\"}\n", "contains a line break"},
		{"reserved header", vp + "    additional_response_headers: {set-cookie: x=1}\n", "set-cookie is set by openqps itself"},
		{"http listen", "frontend: {http_listen: \"80\"}\n" + vp, "frontend.http_listen"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

func TestProxyingDefaults(t *testing.T) {
	c, err := Parse([]byte("virtual_proxies:\n  - prefix: a\n    backends: [\"http://a\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	px := c.VirtualProxies[0].Proxying
	if px.LoadBalancing != "round_robin" || px.SessionCookieSameSite != "unset" || px.SessionCookieSecure != "auto" {
		t.Errorf("defaults %+v", px)
	}
}
