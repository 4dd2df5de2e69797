package config

import (
	"strings"
	"testing"
)

func TestTransportDefaultsAreOpenqpsWithRawSockets(t *testing.T) {
	c, err := Parse([]byte(hardeningVP))
	if err != nil {
		t.Fatal(err)
	}
	if c.Transport != (Transport{Upstream: UpstreamOpenQPS, RawSockets: On}) {
		t.Errorf("transport %+v", c.Transport)
	}
}

func TestTransportSwitchesAreReadAndValidated(t *testing.T) {
	c, err := Parse([]byte("transport: {upstream: net/http, raw_sockets: off}" + hardeningVP))
	if err != nil {
		t.Fatal(err)
	}
	if c.Transport != (Transport{Upstream: UpstreamNetHTTP, RawSockets: Off}) {
		t.Errorf("transport %+v", c.Transport)
	}
	for yaml, want := range map[string]string{
		"transport: {upstream: nethttp}":  "line 1: transport.upstream: must be openqps or net/http",
		"transport: {raw_sockets: false}": "transport.raw_sockets: must be on or off",
		"transport: {raw: on}":            "raw is not a known key",
	} {
		_, err := Parse([]byte(yaml + hardeningVP))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %q", yaml, err, want)
		}
	}
}
