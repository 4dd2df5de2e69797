package config

import (
	"strings"
	"testing"
	"time"
)

const hardeningVP = `
virtual_proxies:
  - prefix: ""
    backends: ["http://127.0.0.1:9000"]
`

func TestTimeoutsAndMetricsDefaults(t *testing.T) {
	c, err := Parse([]byte(hardeningVP))
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeouts != (Timeouts{ReadHeader: 10 * time.Second, RequestBody: 5 * time.Minute, Idle: 5 * time.Minute}) {
		t.Errorf("timeouts %+v", c.Timeouts)
	}
	if c.Metrics.Listen != "" {
		t.Errorf("metrics on by default: %q", c.Metrics.Listen)
	}
}

func TestTimeoutsAndMetricsAreValidated(t *testing.T) {
	for yaml, want := range map[string]string{
		"timeouts: {read_header: -1s}":                                "timeouts",
		"timeouts: {request_body: ten}":                               "line 1",
		"metrics: {listen: \"nohost\"}":                               "metrics.listen",
		"frontend: {listen: \":9443\"}\nmetrics: {listen: \":9443\"}": "never served on the public front end",
	} {
		_, err := Parse([]byte(yaml + hardeningVP))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %q", yaml, err, want)
		}
	}
}
