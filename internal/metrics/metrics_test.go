package metrics

import (
	"context"
	"errors"
	"net/http/httptest"
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

	text := scrape(t, r)
	for _, want := range []string{
		`openqps_frontend_requests_total{code="2xx",vp="sales"} 1`,
		`openqps_frontend_requests_total{code="4xx",vp="sales"} 1`,
		`openqps_frontend_requests_total{code="3xx",vp=""} 1`,
		`openqps_frontend_requests_total{code="other",vp=""} 1`,
		`openqps_frontend_requests_total{code="2xx",vp="hr"} 0`,
		`openqps_frontend_request_duration_seconds_bucket{vp="sales",le="0.0025"} 0`,
		`openqps_frontend_request_duration_seconds_bucket{vp="sales",le="0.005"} 1`,
		`openqps_frontend_request_duration_seconds_bucket{vp="sales",le="10"} 1`,
		`openqps_frontend_request_duration_seconds_bucket{vp="sales",le="+Inf"} 2`,
		`openqps_frontend_request_duration_seconds_sum{vp="sales"} 20.003`,
		`openqps_frontend_request_duration_seconds_count{vp="sales"} 2`,
		`openqps_api_requests_total{code="2xx"} 1`,
		`openqps_upstream_responses_total{code="5xx",vp="hr"} 1`,
		`openqps_api_request_duration_seconds_count 1`,
		`openqps_events_total{event="ticket.issued"} 2`,
		`openqps_websockets_active 1`,
		`openqps_backend_up{backend="http://10.0.0.1:80",vp="sales"} 1`,
		`openqps_backend_up{backend="http://10.0.0.2:80",vp="sales"} 0`,
		`openqps_backend_requests_in_flight{backend="http://10.0.0.1:80",vp="sales"} 3`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
}

func TestScrapeHasGoAndProcessMetrics(t *testing.T) {
	text := scrape(t, New(nil))
	for _, want := range []string{"go_goroutines ", "go_memstats_alloc_bytes ", "process_resident_memory_bytes ", "process_cpu_seconds_total "} {
		if !strings.Contains(text, "\n"+want) {
			t.Errorf("missing %q in /metrics", want)
		}
	}
}

func TestLabelValuesAreEscaped(t *testing.T) {
	r := New(nil)
	r.Event("a\"b\\c\nd")
	if text := scrape(t, r); !strings.Contains(text, `openqps_events_total{event="a\"b\\c\nd"} 1`) {
		t.Errorf("event label not escaped:\n%s", text)
	}
}

func TestStoreMetricsReportItsState(t *testing.T) {
	r := New([]string{"sales"})
	r.Sessions = func(context.Context) (map[string]int, error) { return map[string]int{"sales": 7, "gone": 1}, nil }
	r.StoreProbe = func(context.Context) (time.Duration, error) { return 0, errors.New("store down") }
	text := scrape(t, r)
	for _, want := range []string{`openqps_sessions_active{vp="sales"} 7`, "openqps_store_up 0"} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
	if strings.Contains(text, `vp="gone"`) {
		t.Errorf("sessions of a virtual proxy that is not configured are shown:\n%s", text)
	}
}

// scrape is what Prometheus reads from /metrics.
func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(r, func(context.Context) error { return nil }).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

func BenchmarkFrontendObserve(b *testing.B) {
	r := New([]string{"sales", "hr", "ticketvp"})
	b.ReportAllocs()
	for b.Loop() {
		r.Frontend("/sales/hub/stream/").Observe(200, 2*time.Millisecond)
	}
}
