package metrics

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRequestsAreCountedByVirtualProxyStatusAndLatency(t *testing.T) {
	r := New([]string{"sales", "hr"})
	r.Frontend("/sales/hub/").Observe(200, 3*time.Millisecond)
	r.Frontend("/SALES/x").Observe(404, 20*time.Second)
	r.Frontend("/unknown/x").Observe(302, time.Microsecond) // the default VP serves unknown prefixes
	r.Frontend("/").Observe(999, time.Millisecond)
	r.API().Observe(201, time.Millisecond)
	r.Upstream("hr").Observe(503, time.Millisecond)
	r.Event("ticket.issued")
	r.Event("ticket.issued")
	r.WebsocketOpened()
	r.Backends = func() []Backend {
		return []Backend{{VP: "sales", URL: "http://10.0.0.2:80", Up: false, InFlight: 0}, {VP: "sales", URL: "http://10.0.0.1:80", Up: true, InFlight: 3}}
	}

	var b strings.Builder
	if err := r.WriteText(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{
		`openqps_frontend_requests_total{vp="sales",code="2xx"} 1`,
		`openqps_frontend_requests_total{vp="sales",code="4xx"} 1`,
		`openqps_frontend_requests_total{vp="",code="3xx"} 1`,
		`openqps_frontend_requests_total{vp="",code="other"} 1`,
		`openqps_frontend_requests_total{vp="hr",code="2xx"} 0`,
		`openqps_frontend_request_duration_seconds_bucket{vp="sales",le="0.0025"} 0`,
		`openqps_frontend_request_duration_seconds_bucket{vp="sales",le="0.005"} 1`,
		`openqps_frontend_request_duration_seconds_bucket{vp="sales",le="10"} 1`,
		`openqps_frontend_request_duration_seconds_bucket{vp="sales",le="+Inf"} 2`,
		`openqps_frontend_request_duration_seconds_sum{vp="sales"} 20.003`,
		`openqps_frontend_request_duration_seconds_count{vp="sales"} 2`,
		`openqps_api_requests_total{code="2xx"} 1`,
		`openqps_upstream_responses_total{vp="hr",code="5xx"} 1`,
		`openqps_api_request_duration_seconds_count 1`,
		`openqps_events_total{event="ticket.issued"} 2`,
		`openqps_websockets_active 1`,
		`openqps_backend_up{vp="sales",backend="http://10.0.0.1:80"} 1`,
		`openqps_backend_up{vp="sales",backend="http://10.0.0.2:80"} 0`,
		`openqps_backend_requests_in_flight{vp="sales",backend="http://10.0.0.1:80"} 3`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
}

func TestLabelValuesAreEscaped(t *testing.T) {
	if got := escape("a\"b\\c\nd"); got != `a\"b\\c\nd` {
		t.Errorf("escape: %s", got)
	}
}

func BenchmarkFrontendObserve(b *testing.B) {
	r := New([]string{"sales", "hr", "ticketvp"})
	b.ReportAllocs()
	for b.Loop() {
		r.Frontend("/sales/hub/stream/").Observe(200, 2*time.Millisecond)
	}
}
