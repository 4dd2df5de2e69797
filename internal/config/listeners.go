package config

import "time"

// Frontend is the browser-facing listener.
type Frontend struct {
	Listen string `yaml:"listen"` // HTTPS, e.g. ":8443"
	// PublicURL is the base URL browsers use to reach the front end, used
	// for TargetUri when the request's own host is not what browsers see
	// (behind a load balancer). Empty: taken from the request.
	PublicURL string `yaml:"public_url"`
	// HTTPListen is an optional plain-HTTP listener; its session cookies
	// get QPS's "-HTTP" suffix.
	HTTPListen string `yaml:"http_listen"`
	// ShutdownTimeout bounds how long a graceful shutdown waits for
	// in-flight requests.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// API is the trusted, mutually authenticated API (QPS port 4243).
type API struct {
	Listen string `yaml:"listen"`
	// PublicURL is the base of proxyRestUri given to login modules; empty
	// means https://<request host name>:<api port>.
	PublicURL string `yaml:"public_url"`
	// MaxBodyBytes is the largest request body accepted (413 above it).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Defaults of the listeners.
const (
	DefaultFrontendListen = ":8443"
	DefaultAPIListen      = ":4243"
	DefaultMaxBodyBytes   = 64 << 10
	// DefaultShutdownTimeout bounds a graceful shutdown.
	DefaultShutdownTimeout = 30 * time.Second
)

func (f *Frontend) setDefaults() {
	if f.Listen == "" {
		f.Listen = DefaultFrontendListen
	}
	if f.ShutdownTimeout == 0 {
		f.ShutdownTimeout = DefaultShutdownTimeout
	}
}

func (v *validator) frontend(f *Frontend) {
	v.listen("frontend.listen", f.Listen)
	if f.HTTPListen != "" {
		v.listen("frontend.http_listen", f.HTTPListen)
	}
	v.optionalURL("frontend.public_url", f.PublicURL)
	if f.ShutdownTimeout < 0 {
		v.fail("frontend.shutdown_timeout", "must be positive, e.g. 30s")
	}
}

func (a *API) setDefaults() {
	if a.Listen == "" {
		a.Listen = DefaultAPIListen
	}
	if a.MaxBodyBytes == 0 {
		a.MaxBodyBytes = DefaultMaxBodyBytes
	}
}

func (v *validator) api(a *API) {
	v.listen("api.listen", a.Listen)
	v.optionalURL("api.public_url", a.PublicURL)
	if a.MaxBodyBytes < 0 {
		v.fail("api.max_body_bytes", "must be positive")
	}
}

// TLS names user-supplied certificates. When all are empty, openqps
// generates a CA and certificates into <data_dir>/certs on first start.
type TLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// tls checks that the certificates are given all together or not at all.
func (v *validator) tls(t *TLS) {
	set := 0
	for _, f := range []string{t.CA, t.Cert, t.Key} {
		if f != "" {
			set++
		}
	}
	if set != 0 && set != 3 {
		v.fail("tls", "set all of ca, cert and key, or none (openqps then generates them)")
	}
}
