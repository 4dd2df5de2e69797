package config

import "strings"

// Metrics is the operations listener: Prometheus /metrics, /healthz and
// /readyz. It is never served on the public front end.
type Metrics struct {
	Listen string `yaml:"listen"` // e.g. "127.0.0.1:9090"; empty: off
}

// metrics checks the operations listener, which must never be one of
// the public ones.
func (v *validator) metrics(c *Config) {
	addr := c.Metrics.Listen
	if addr == "" {
		return
	}
	v.listen("metrics.listen", addr)
	if !strings.HasSuffix(addr, ":0") && (addr == c.Frontend.Listen || addr == c.API.Listen) {
		v.fail("metrics.listen", "must differ from frontend.listen and api.listen: metrics are never served on the public front end")
	}
}
