package config

import "time"

// Timeouts bound how long a client may take, so slow clients (slowloris
// headers, trickled bodies) cannot hold connections open for ever. They
// apply to the front end and the trusted API alike.
type Timeouts struct {
	// ReadHeader bounds the TLS handshake and reading a request's
	// headers.
	ReadHeader time.Duration `yaml:"read_header"`
	// RequestBody bounds reading a request's body, from the end of its
	// headers. Websocket connections are not bounded by it.
	RequestBody time.Duration `yaml:"request_body"`
	// Idle is how long a keep-alive connection may wait for its next
	// request.
	Idle time.Duration `yaml:"idle"`
}

// Default timeouts.
const (
	DefaultReadHeaderTimeout  = 10 * time.Second
	DefaultRequestBodyTimeout = 5 * time.Minute
	DefaultIdleTimeout        = 5 * time.Minute
)

func (t *Timeouts) setDefaults() {
	if t.ReadHeader == 0 {
		t.ReadHeader = DefaultReadHeaderTimeout
	}
	if t.RequestBody == 0 {
		t.RequestBody = DefaultRequestBodyTimeout
	}
	if t.Idle == 0 {
		t.Idle = DefaultIdleTimeout
	}
}

func (v *validator) timeouts(t *Timeouts) {
	if t.ReadHeader < 0 || t.RequestBody < 0 || t.Idle < 0 {
		v.fail("timeouts", "read_header, request_body and idle must be positive durations such as 10s")
	}
}
