package config

import "testing"

func TestInlineSettingsAreKnownKeys(t *testing.T) {
	c, err := Parse([]byte("virtual_proxies:\n  - prefix: a\n    backends: [\"http://a\"]\n    load_balancing: sticky\n    anonymous_access: allow\n"))
	if err != nil {
		t.Fatal(err)
	}
	vp, _ := c.VirtualProxy("a")
	if vp.Proxying.LoadBalancing != "sticky" || vp.Auth.AnonymousAccess != "allow" {
		t.Errorf("%+v %+v", vp.Proxying, vp.Auth)
	}
}
