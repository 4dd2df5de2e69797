package config

// Transport configures how openqps's connections are carried: which
// client sends requests to the back ends, and whether socket reads and
// writes are raw system calls. Both are switches to compare with and to
// fall back on: the defaults are the faster choices.
type Transport struct {
	// Upstream is the client for back ends: "openqps" (default), its own
	// HTTP/1.1 client, or "net/http", Go's http.Transport. Both pool
	// connections and refuse the same answers (internal/upstream). A
	// reload applies it to new requests.
	Upstream string `yaml:"upstream"`
	// RawSockets: "on" (default) makes the reads and writes of the
	// front end's connections and the back-end connections raw system
	// calls on Linux (internal/rawsock explains what that saves); "off"
	// leaves them to Go's runtime, should a kernel or a Go release
	// misbehave with them. The front-end listeners take it at start, the
	// back-end connections at start and on reload.
	RawSockets string `yaml:"raw_sockets"`
}

// Values of Transport's switches.
const (
	UpstreamOpenQPS = "openqps"
	UpstreamNetHTTP = "net/http"
	On              = "on"
	Off             = "off"
)

func (t *Transport) setDefaults() {
	if t.Upstream == "" {
		t.Upstream = UpstreamOpenQPS
	}
	if t.RawSockets == "" {
		t.RawSockets = On
	}
}

func (v *validator) transport(t *Transport) {
	if t.Upstream != UpstreamOpenQPS && t.Upstream != UpstreamNetHTTP {
		v.fail("transport.upstream", "must be openqps or net/http")
	}
	if t.RawSockets != On && t.RawSockets != Off {
		v.fail("transport.raw_sockets", "must be on or off")
	}
}
