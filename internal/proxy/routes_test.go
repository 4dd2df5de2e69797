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

// newTestProxy is a Proxy of the configuration in yaml over a memory
// store, both closed when the test ends.
func newTestProxy(tb testing.TB, yaml string, opts Options) *Proxy {
	tb.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		tb.Fatal(err)
	}
	store := session.NewMemory()
	tb.Cleanup(func() { store.Close() })
	p, err := New(cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}

func addressTestRoutes(tb testing.TB, publicURL string) *routes {
	return newTestProxy(tb, `
frontend: {listen: "127.0.0.1:0", public_url: "`+publicURL+`"}
api: {listen: "127.0.0.1:0"}
store: {type: memory}
virtual_proxies:
  - prefix: ""
    backends: ["http://127.0.0.1:1"]
    websocket_origin_allow_list: ["mashup.example", "fixed.example:9000", "[::2]"]
`, Options{Hosts: []string{"proxy.example"}, HTTPSPort: 8443, HTTPPort: 8080}).routes.Load()
}

// TestAddressAllowedChecksSchemeHostAndPort: one table for both
// questions asked of a host: is it an address of this proxy
// (addressAllowed: Host, reloadUri, targetUri, websocket Origin), and so
// what Host a back end is told (forwardedHost: X-Forwarded-Host,
// logoutUri) — the request's own when it is allowed, else publicHost.
func TestAddressAllowedChecksSchemeHostAndPort(t *testing.T) {
	// Not parallel: AllocsPerRun below.
	rt := addressTestRoutes(t, "https://lb.example:9443/")
	for _, c := range []struct {
		scheme, hostport string
		want             bool
		forwarded        string // when not hostport (allowed) or publicHost (not)
	}{
		{scheme: "https", hostport: "proxy.example", want: true},
		{scheme: "https", hostport: "PROXY.example:443", want: true},
		{scheme: "https", hostport: "proxy.example:8443", want: true},
		{scheme: "https", hostport: "proxy.example:", want: true, forwarded: "proxy.example"}, // empty port: the default (RFC 3986)
		{scheme: "https", hostport: "proxy.example:8080"},
		{scheme: "http", hostport: "proxy.example:8080", want: true},
		{scheme: "http", hostport: "proxy.example:8443"},
		{scheme: "https", hostport: "proxy.example:31337"},
		{scheme: "https", hostport: "localhost", want: true},
		{scheme: "https", hostport: "localhost:8443", want: true},
		{scheme: "https", hostport: "localhost:31337"},
		{scheme: "https", hostport: "localhost:", want: true, forwarded: "localhost"},
		{scheme: "https", hostport: "[::1]:8443", want: true},
		{scheme: "https", hostport: "[::1]:443", want: true},
		{scheme: "https", hostport: "[::1]", want: true},
		{scheme: "https", hostport: "[::1]:31337"},
		{scheme: "https", hostport: "mashup.example", want: true},
		{scheme: "https", hostport: "mashup.example:8443", want: true},
		{scheme: "https", hostport: "mashup.example:31337"},
		{scheme: "https", hostport: "fixed.example:9000", want: true},
		{scheme: "http", hostport: "fixed.example:9000", want: true},
		{scheme: "https", hostport: "fixed.example"},
		{scheme: "https", hostport: "fixed.example:8443"},
		{scheme: "https", hostport: "[::2]:443", want: true},
		{scheme: "https", hostport: "lb.example:9443", want: true},
		{scheme: "http", hostport: "lb.example:9443"},
		{scheme: "https", hostport: "lb.example", want: true},
		{scheme: "https", hostport: "lb.example:31337"},
		{scheme: "https", hostport: "proxy.example:+443"},
		{scheme: "https", hostport: "proxy.example:0443"},
		{scheme: "https", hostport: "proxy.example:65979"},
		{scheme: "https", hostport: "proxy.example:99999999999999999999"},
		{scheme: "https", hostport: "proxy.example.evil"},
		{scheme: "https", hostport: "evil.example"},
		{scheme: "https", hostport: "evil@proxy.example"},
		{scheme: "https", hostport: "evil@localhost"},
		{scheme: "https", hostport: "localhost:1@evil.example"},
		{scheme: "https", hostport: "mashup.example:1@evil.test"},
		{scheme: "https", hostport: "localhost:443/evil"},
		{scheme: "https", hostport: "localhost:x"},
		{scheme: "https", hostport: "localhost.evil.example"},
		{scheme: "https", hostport: "localhost?x"},
		{scheme: "https", hostport: "local%68ost"},
		{scheme: "https", hostport: "localhost\t"},
		{scheme: "https", hostport: "[::1]x"},
		{scheme: "https", hostport: "[::1%25eth0]"},
		{scheme: "https", hostport: "[]:443"},
		{scheme: "https", hostport: ""},
		{scheme: "https", hostport: ":8443"},
		{scheme: "ftp", hostport: "proxy.example"},
		{scheme: "https", hostport: "[proxy.example"},
	} {
		if got := rt.addressAllowed(c.scheme, c.hostport, rt.def); got != c.want {
			t.Errorf("%s://%s allowed: %v, want %v", c.scheme, c.hostport, got, c.want)
		}
		want := c.forwarded
		switch {
		case want != "":
		case c.want:
			want = c.hostport
		default:
			want = rt.publicHost
		}
		if got := rt.forwardedHost(c.scheme, c.hostport, rt.def); got != want {
			t.Errorf("forwardedHost(%s, %q) = %q, want %q", c.scheme, c.hostport, got, want)
		}
	}
	if rt.publicHost != "lb.example:9443" {
		t.Errorf("publicHost %q, want frontend.public_url's host", rt.publicHost)
	}
	if n := testing.AllocsPerRun(100, func() {
		rt.forwardedHost("https", "localhost:8443", rt.def)
		rt.forwardedHost("https", "proxy.example", rt.def)
		rt.forwardedHost("https", "mashup.example:8443", rt.def)
		rt.forwardedHost("https", "proxy.example:99999", rt.def)
		rt.forwardedHost("https", "proxy.example:1x", rt.def)
		rt.forwardedHost("http", "evil.example", rt.def)
	}); n != 0 {
		t.Errorf("forwardedHost allocates %v times", n)
	}
}

// FuzzParseAddress: any Host header or URL host part parses to a plain
// lower-case name or IP address and a port in range, or is refused;
// never a panic. What forwardedHost tells a back end is that Host or
// publicHost, nothing in between.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"proxy.example", "proxy.example:8443", "[::1]:443", "[::1]", "host:", ":1", "a:+1", "a:0443", "a:65536", "[x", "x]:1", "A:1",
		"localhost", "a@b:1", "x:1@y", "[", "[]:", "A.B", "mashup.example:8443", "lb.example:9443"} {
		f.Add("https", s)
	}
	rt := addressTestRoutes(f, "https://lb.example:9443/")
	f.Fuzz(func(t *testing.T, scheme, hostport string) {
		fh := rt.forwardedHost(scheme, hostport, rt.def)
		allowed := rt.addressAllowed(scheme, hostport, rt.def)
		if allowed && fh != strings.TrimSuffix(hostport, ":") || !allowed && fh != rt.publicHost {
			t.Fatalf("forwardedHost(%s, %q) = %q, allowed %v", scheme, hostport, fh, allowed)
		}
		a, ok := parseAddress(scheme, hostport)
		if !ok {
			if allowed {
				t.Fatalf("%s://%s allowed, but no address", scheme, hostport)
			}
			return
		}
		if a.scheme != scheme || a.host == "" || a.host != strings.ToLower(a.host) || a.port < 1 || a.port > 65535 {
			t.Fatalf("%q over %s parsed to %+v", hostport, scheme, a)
		}
		if strings.ContainsAny(hostport, "[]@/\\?#% \t\r\n") && !strings.HasPrefix(hostport, "[") || strings.ContainsAny(a.host, "[]@/\\?#% \t\r\n") {
			t.Fatalf("%q: host %q", hostport, a.host)
		}
		if !strings.HasPrefix(hostport, "[") {
			if _, port, found := strings.Cut(hostport, ":"); found && strings.Trim(port, "0123456789") != "" {
				t.Fatalf("%q accepted with port %q", hostport, port)
			}
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
