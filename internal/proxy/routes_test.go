package proxy

import (
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

func addressTestRoutes(t testing.TB, publicURL string) *routes {
	cfg, err := config.Parse([]byte(`
frontend: {listen: "127.0.0.1:0", public_url: "` + publicURL + `"}
api: {listen: "127.0.0.1:0"}
store: {type: memory}
virtual_proxies:
  - prefix: ""
    backends: ["http://127.0.0.1:1"]
    websocket_origin_allow_list: ["mashup.example", "fixed.example:9000", "[::2]"]
`))
	if err != nil {
		t.Fatal(err)
	}
	store := session.NewMemory()
	t.Cleanup(func() { store.Close() })
	p, err := New(cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Hosts: []string{"proxy.example"}, HTTPSPort: 8443, HTTPPort: 8080})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p.routes.Load()
}

func TestAddressAllowedChecksSchemeHostAndPort(t *testing.T) {
	rt := addressTestRoutes(t, "https://lb.example:9443/")
	for _, c := range []struct {
		scheme, hostport string
		want             bool
	}{
		{"https", "proxy.example", true},
		{"https", "PROXY.example:443", true},
		{"https", "proxy.example:8443", true},
		{"https", "proxy.example:", true}, // empty port: the default (RFC 3986)
		{"https", "proxy.example:8080", false},
		{"http", "proxy.example:8080", true},
		{"http", "proxy.example:8443", false},
		{"https", "proxy.example:31337", false},
		{"https", "localhost:8443", true},
		{"https", "localhost:31337", false},
		{"https", "[::1]:8443", true},
		{"https", "[::1]:31337", false},
		{"https", "mashup.example", true},
		{"https", "mashup.example:8443", true},
		{"https", "mashup.example:31337", false},
		{"https", "fixed.example:9000", true},
		{"http", "fixed.example:9000", true},
		{"https", "fixed.example", false},
		{"https", "fixed.example:8443", false},
		{"https", "[::2]:443", true},
		{"https", "lb.example:9443", true},
		{"http", "lb.example:9443", false},
		{"https", "lb.example", true},
		{"https", "lb.example:31337", false},
		{"https", "proxy.example:+443", false},
		{"https", "proxy.example:0443", false},
		{"https", "proxy.example:65979", false},
		{"https", "proxy.example:99999999999999999999", false},
		{"https", "proxy.example.evil", false},
		{"https", "evil@proxy.example", false},
		{"https", "", false},
		{"https", ":8443", false},
		{"ftp", "proxy.example", false},
		{"https", "[proxy.example", false},
	} {
		if got := rt.addressAllowed(c.scheme, c.hostport, rt.def); got != c.want {
			t.Errorf("%s://%s allowed: %v, want %v", c.scheme, c.hostport, got, c.want)
		}
	}
}

// FuzzParseAddress: any Host header or URL host part parses to a lower-
// case host and a port in range, or is refused; never a panic.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"proxy.example", "proxy.example:8443", "[::1]:443", "[::1]", "host:", ":1", "a:+1", "a:0443", "a:65536", "[x", "x]:1", "A:1"} {
		f.Add("https", s)
	}
	f.Fuzz(func(t *testing.T, scheme, hostport string) {
		a, ok := parseAddress(scheme, hostport)
		if !ok {
			return
		}
		if a.scheme != scheme || a.host == "" || a.host != strings.ToLower(a.host) || a.port < 1 || a.port > 65535 {
			t.Fatalf("%q over %s parsed to %+v", hostport, scheme, a)
		}
		if strings.ContainsAny(a.host, "[]@/\\ ") {
			t.Fatalf("%q: host %q", hostport, a.host)
		}
		host := a.host
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		again, ok := parseAddress(scheme, host+":"+strconv.Itoa(a.port))
		if !ok || again != a {
			t.Fatalf("%q parsed to %+v, which spells back as %+v, %v", hostport, a, again, ok)
		}
	})
}

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
