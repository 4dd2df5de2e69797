package proxy

import (
	"strings"
	"testing"

	"github.com/openqps/openqps/internal/config"
)

func TestForwardedHostIsANameOfThisProxy(t *testing.T) {
	vp := &virtualProxy{cfg: &config.VirtualProxy{Proxying: config.Proxying{HostAllowList: []string{"qlik.example.com"}}}}
	rt := &routes{hosts: map[string]bool{"localhost": true, "::1": true, "front.example": true}, publicHost: "public.example"}
	for host, want := range map[string]string{
		"localhost":                    "localhost",
		"localhost:8443":               "localhost:8443",
		"FRONT.example:443":            "FRONT.example:443",
		"[::1]:443":                    "[::1]:443",
		"[::1]":                        "[::1]",
		"qlik.example.com":             "qlik.example.com",
		"evil.example":                 "public.example",
		"localhost:1@evil.example":     "public.example",
		"localhost:443/evil":           "public.example",
		"localhost:":                   "public.example",
		"localhost:x":                  "public.example",
		"localhost.evil.example":       "public.example",
		"evil@localhost":               "public.example",
		"[::1]x":                       "public.example",
		"":                             "public.example",
		"qlik.example.com:1@evil.test": "public.example",
	} {
		if got := rt.forwardedHost(host, vp); got != want {
			t.Errorf("forwardedHost(%q) = %q, want %q", host, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { rt.forwardedHost("localhost:8443", vp); rt.forwardedHost("proxy.example", vp) }); n != 0 {
		t.Errorf("forwardedHost allocates %v times", n)
	}
}

// FuzzHostName: a Host value hostName accepts is a plain name or IP
// address with at most a numeric port, and its name is lower case.
func FuzzHostName(f *testing.F) {
	for _, s := range []string{"localhost", "localhost:8443", "[::1]:443", "a@b:1", "x:1@y", "[", "[]:", "A.B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		name, ok := hostName(host)
		if !ok {
			return
		}
		if name == "" || strings.ContainsAny(host, "@/\\?# \t\r\n%") || name != strings.ToLower(name) {
			t.Fatalf("hostName(%q) = %q, ok", host, name)
		}
		if strings.HasPrefix(host, "[") {
			return
		}
		if _, port, found := strings.Cut(host, ":"); found && strings.Trim(port, "0123456789") != "" {
			t.Fatalf("hostName(%q) = %q, ok, with port %q", host, name, port)
		}
	})
}
