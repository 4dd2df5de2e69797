// Package metrics counts what openqps does, for Prometheus: requests by
// listener, virtual proxy and status class with their latency, websocket
// connections in progress, and every logged event (tickets issued,
// redeemed and rejected, sessions added and ended, authentication
// failures, store and back-end errors). The request path only adds to
// atomic counters found without building strings; the Registry is a
// prometheus.Collector that turns them into metrics when Prometheus
// scrapes.
package metrics

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// latencyBuckets are the upper bounds, in seconds, of the latency
// histograms.
var latencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Requests counts the answers of one listener or virtual proxy. It is
// safe for concurrent use.
type Requests struct {
	codes    [6]atomic.Uint64 // by status/100; 0 is anything else
	buckets  [len(latencyBuckets) + 1]atomic.Uint64
	sumNanos atomic.Uint64
}

// Observe records one answered request.
func (r *Requests) Observe(status int, d time.Duration) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	r.codes[class].Add(1)
	s := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	r.buckets[i].Add(1)
	r.sumNanos.Add(uint64(d))
}

// vpRequests are the counters of one virtual proxy: its answers to
// browsers, and its back ends' answers to openqps.
type vpRequests struct {
	front, upstream Requests
}

// Registry holds all of openqps's metrics. It is safe for concurrent
// use.
type Registry struct {
	vps atomic.Pointer[map[string]*vpRequests] // by virtual proxy prefix
	api Requests

	websockets      atomic.Int64
	websocketsTotal atomic.Uint64

	events sync.Map // event name -> *atomic.Uint64

	// Sessions, when set, counts live sessions by virtual proxy at
	// scrape time.
	Sessions func(ctx context.Context) (map[string]int, error)
	// StoreProbe, when set, times one session lookup at scrape time.
	StoreProbe func(ctx context.Context) (time.Duration, error)
	// Backends, when set, reports the back ends' health at scrape time.
	Backends func() []Backend
}

// Backend is one back end of a virtual proxy as /metrics shows it.
type Backend struct {
	VP, URL  string
	Up       bool  // takes requests now
	InFlight int64 // requests being forwarded to it
}

// New returns a registry for the given virtual proxy prefixes.
func New(prefixes []string) *Registry {
	r := &Registry{}
	r.SetVirtualProxies(prefixes)
	return r
}

// SetVirtualProxies sets the virtual proxies requests are counted by
// (after a configuration reload). Counters of prefixes that stay are
// kept.
func (r *Registry) SetVirtualProxies(prefixes []string) {
	m := map[string]*vpRequests{"": {}}
	if old := r.vps.Load(); old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	for _, p := range prefixes {
		if m[p] == nil {
			m[p] = &vpRequests{}
		}
	}
	r.vps.Store(&m)
}

// Frontend returns the counters of the virtual proxy a front-end path
// belongs to: the one named by its first segment, else the default one,
// as the front end routes it.
func (r *Registry) Frontend(path string) *Requests {
	m := *r.vps.Load()
	first := strings.TrimPrefix(path, "/")
	if i := strings.IndexByte(first, '/'); i >= 0 {
		first = first[:i]
	}
	if first != "" {
		if c := m[first]; c != nil {
			return &c.front
		}
		if c := m[strings.ToLower(first)]; c != nil {
			return &c.front
		}
	}
	return &m[""].front
}

// Upstream returns the counters of the back ends of the virtual proxy
// prefix: their status and the time to their response head.
func (r *Registry) Upstream(prefix string) *Requests {
	m := *r.vps.Load()
	if c := m[prefix]; c != nil {
		return &c.upstream
	}
	return &m[""].upstream
}

// API returns the counters of the trusted API.
func (r *Registry) API() *Requests { return &r.api }

// WebsocketOpened and WebsocketClosed track websocket connections in
// progress.
func (r *Registry) WebsocketOpened() { r.websockets.Add(1); r.websocketsTotal.Add(1) }

// WebsocketClosed: see WebsocketOpened.
func (r *Registry) WebsocketClosed() { r.websockets.Add(-1) }

// Event counts one logged event ("ticket.issued", "session.expired").
func (r *Registry) Event(name string) {
	c, ok := r.events.Load(name)
	if !ok {
		c, _ = r.events.LoadOrStore(name, new(atomic.Uint64))
	}
	c.(*atomic.Uint64).Add(1)
}

// EventCount returns how often an event was counted.
func (r *Registry) EventCount(name string) uint64 {
	if c, ok := r.events.Load(name); ok {
		return c.(*atomic.Uint64).Load()
	}
	return 0
}

// Descriptions of the metrics Collect reports.
var (
	frontendRequests  = prometheus.NewDesc("openqps_frontend_requests_total", "Front-end requests answered, by virtual proxy and status class.", []string{"vp", "code"}, nil)
	frontendDuration  = prometheus.NewDesc("openqps_frontend_request_duration_seconds", "Time to answer a front-end request (websockets excluded), by virtual proxy.", []string{"vp"}, nil)
	upstreamResponses = prometheus.NewDesc("openqps_upstream_responses_total", "Back-end answers, by virtual proxy and status class.", []string{"vp", "code"}, nil)
	upstreamDuration  = prometheus.NewDesc("openqps_upstream_response_duration_seconds", "Time from sending a request to a back end to its response head, by virtual proxy.", []string{"vp"}, nil)
	apiRequests       = prometheus.NewDesc("openqps_api_requests_total", "Trusted API requests answered, by status class.", []string{"code"}, nil)
	apiDuration       = prometheus.NewDesc("openqps_api_request_duration_seconds", "Time to answer a trusted API request.", nil, nil)
	websocketsActive  = prometheus.NewDesc("openqps_websockets_active", "Websocket connections in progress.", nil, nil)
	websocketsTotal   = prometheus.NewDesc("openqps_websockets_total", "Websocket upgrades requested.", nil, nil)
	eventsTotal       = prometheus.NewDesc("openqps_events_total", "Logged events: session.added|deleted|expired|logged_out, ticket.issued|redeemed|rejected, auth.*, api.rejected, frontend.rejected, store.error, backend.error|down|up, panic.", []string{"event"}, nil)
	backendUp         = prometheus.NewDesc("openqps_backend_up", "1 when the back end takes requests, 0 while it is left out after failing.", []string{"vp", "backend"}, nil)
	backendInFlight   = prometheus.NewDesc("openqps_backend_requests_in_flight", "Requests being forwarded to the back end.", []string{"vp", "backend"}, nil)
	sessionsActive    = prometheus.NewDesc("openqps_sessions_active", "Live sessions by virtual proxy.", []string{"vp"}, nil)
	storeProbe        = prometheus.NewDesc("openqps_store_probe_duration_seconds", "Time one session lookup took at this scrape.", nil, nil)
	storeUp           = prometheus.NewDesc("openqps_store_up", "1 when the session store answered at this scrape.", nil, nil)
)

// scrapeTimeout bounds what a scrape waits for the session store.
const scrapeTimeout = 2 * time.Second

// Describe sends nothing: the virtual proxies, events and back ends a
// scrape reports change at run time, so the registry is an unchecked
// collector (see prometheus.Collector).
func (r *Registry) Describe(chan<- *prometheus.Desc) {}

// Collect reports every metric as it stands now. The counters are read
// atomically one by one; a scrape taken while requests are answered may
// see a histogram count one ahead of its buckets, as with any lock-free
// counter set.
func (r *Registry) Collect(ch chan<- prometheus.Metric) {
	m := *r.vps.Load()
	for p, c := range m {
		collectCodes(ch, frontendRequests, &c.front, p)
		collectHistogram(ch, frontendDuration, &c.front, p)
		collectCodes(ch, upstreamResponses, &c.upstream, p)
		collectHistogram(ch, upstreamDuration, &c.upstream, p)
	}
	collectCodes(ch, apiRequests, &r.api)
	collectHistogram(ch, apiDuration, &r.api)
	ch <- prometheus.MustNewConstMetric(websocketsActive, prometheus.GaugeValue, float64(r.websockets.Load()))
	ch <- prometheus.MustNewConstMetric(websocketsTotal, prometheus.CounterValue, float64(r.websocketsTotal.Load()))
	r.events.Range(func(k, v any) bool {
		ch <- prometheus.MustNewConstMetric(eventsTotal, prometheus.CounterValue, float64(v.(*atomic.Uint64).Load()), k.(string))
		return true
	})
	if r.Backends != nil {
		for _, b := range r.Backends() {
			up := 0.0
			if b.Up {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(backendUp, prometheus.GaugeValue, up, b.VP, b.URL)
			ch <- prometheus.MustNewConstMetric(backendInFlight, prometheus.GaugeValue, float64(b.InFlight), b.VP, b.URL)
		}
	}
	if r.Sessions != nil {
		r.collectStore(ch, m)
	}
}

// collectStore reports the live sessions of the configured virtual
// proxies and whether the store answered.
func (r *Registry) collectStore(ch chan<- prometheus.Metric, vps map[string]*vpRequests) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	counts, err := r.Sessions(ctx)
	if err == nil {
		for p, n := range counts {
			if vps[p] != nil {
				ch <- prometheus.MustNewConstMetric(sessionsActive, prometheus.GaugeValue, float64(n), p)
			}
		}
	}
	if r.StoreProbe != nil && err == nil {
		var d time.Duration
		d, err = r.StoreProbe(ctx)
		ch <- prometheus.MustNewConstMetric(storeProbe, prometheus.GaugeValue, d.Seconds())
	}
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(storeUp, prometheus.GaugeValue, up)
}

// collectCodes reports r's answers by status class; "other" only once
// there was one.
func collectCodes(ch chan<- prometheus.Metric, d *prometheus.Desc, r *Requests, labels ...string) {
	for class := 1; class <= 5; class++ {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(r.codes[class].Load()), append(labels, strconv.Itoa(class)+"xx")...)
	}
	if n := r.codes[0].Load(); n > 0 {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), append(labels, "other")...)
	}
}

func collectHistogram(ch chan<- prometheus.Metric, d *prometheus.Desc, r *Requests, labels ...string) {
	buckets := make(map[float64]uint64, len(latencyBuckets))
	var cum uint64
	for i, le := range latencyBuckets {
		cum += r.buckets[i].Load()
		buckets[le] = cum
	}
	cum += r.buckets[len(latencyBuckets)].Load()
	sum := float64(r.sumNanos.Load()) / float64(time.Second)
	ch <- prometheus.MustNewConstHistogram(d, cum, sum, buckets, labels...)
}

// Gatherer is what /metrics shows: reg's metrics with Go's runtime
// (go_*) and the process's (process_*), as Prometheus users expect of a
// Go service.
func Gatherer(reg *Registry) prometheus.Gatherer {
	g := prometheus.NewRegistry()
	g.MustRegister(reg, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return g
}

// Handler serves the operations listener: /metrics, /healthz (the
// process is up) and /readyz (ready returns nil: the store answers and
// the listeners serve). It must never be served on the public front end.
func Handler(reg *Registry, ready func(ctx context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(Gatherer(reg), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready: "+err.Error()+"\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}
