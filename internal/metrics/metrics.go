// Package metrics counts what openqps does, for Prometheus: requests by
// listener, virtual proxy and status class with their latency, websocket
// connections in progress, and every logged event (tickets issued,
// redeemed and rejected, sessions added and ended, authentication
// failures, store and back-end errors). The request path only adds to
// atomic counters found without building strings; the text exposition
// format is written by hand when Prometheus scrapes, which is all the
// client library would do for us here.
package metrics

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// WriteText writes every metric in Prometheus's text exposition format.
func (r *Registry) WriteText(ctx context.Context, out io.Writer) error {
	w := bufio.NewWriter(out)
	m := *r.vps.Load()
	prefixes := make([]string, 0, len(m))
	for p := range m {
		prefixes = append(prefixes, p)
	}
	sort.Strings(prefixes)

	family(w, "openqps_frontend_requests_total", "counter", "Front-end requests answered, by virtual proxy and status class.")
	for _, p := range prefixes {
		writeCodes(w, "openqps_frontend_requests_total", `vp="`+escape(p)+`"`, &m[p].front)
	}
	family(w, "openqps_frontend_request_duration_seconds", "histogram", "Time to answer a front-end request (websockets excluded), by virtual proxy.")
	for _, p := range prefixes {
		writeHistogram(w, "openqps_frontend_request_duration_seconds", `vp="`+escape(p)+`"`, &m[p].front)
	}
	family(w, "openqps_upstream_responses_total", "counter", "Back-end answers, by virtual proxy and status class.")
	for _, p := range prefixes {
		writeCodes(w, "openqps_upstream_responses_total", `vp="`+escape(p)+`"`, &m[p].upstream)
	}
	family(w, "openqps_upstream_response_duration_seconds", "histogram", "Time from sending a request to a back end to its response head, by virtual proxy.")
	for _, p := range prefixes {
		writeHistogram(w, "openqps_upstream_response_duration_seconds", `vp="`+escape(p)+`"`, &m[p].upstream)
	}
	family(w, "openqps_api_requests_total", "counter", "Trusted API requests answered, by status class.")
	writeCodes(w, "openqps_api_requests_total", "", &r.api)
	family(w, "openqps_api_request_duration_seconds", "histogram", "Time to answer a trusted API request.")
	writeHistogram(w, "openqps_api_request_duration_seconds", "", &r.api)

	family(w, "openqps_websockets_active", "gauge", "Websocket connections in progress.")
	fmt.Fprintf(w, "openqps_websockets_active %d\n", r.websockets.Load())
	family(w, "openqps_websockets_total", "counter", "Websocket upgrades requested.")
	fmt.Fprintf(w, "openqps_websockets_total %d\n", r.websocketsTotal.Load())

	var events []string
	r.events.Range(func(k, _ any) bool { events = append(events, k.(string)); return true })
	sort.Strings(events)
	family(w, "openqps_events_total", "counter", "Logged events: session.added|deleted|expired|logged_out, ticket.issued|redeemed|rejected, auth.*, api.rejected, frontend.rejected, store.error, backend.error|down|up, panic.")
	for _, e := range events {
		fmt.Fprintf(w, "openqps_events_total{event=\"%s\"} %d\n", escape(e), r.EventCount(e))
	}

	if r.Backends != nil {
		list := r.Backends()
		sort.Slice(list, func(i, j int) bool {
			if list[i].VP != list[j].VP {
				return list[i].VP < list[j].VP
			}
			return list[i].URL < list[j].URL
		})
		family(w, "openqps_backend_up", "gauge", "1 when the back end takes requests, 0 while it is left out after failing.")
		for _, b := range list {
			up := 0
			if b.Up {
				up = 1
			}
			fmt.Fprintf(w, "openqps_backend_up{vp=\"%s\",backend=\"%s\"} %d\n", escape(b.VP), escape(b.URL), up)
		}
		family(w, "openqps_backend_requests_in_flight", "gauge", "Requests being forwarded to the back end.")
		for _, b := range list {
			fmt.Fprintf(w, "openqps_backend_requests_in_flight{vp=\"%s\",backend=\"%s\"} %d\n", escape(b.VP), escape(b.URL), b.InFlight)
		}
	}
	if r.Sessions != nil {
		counts, err := r.Sessions(ctx)
		family(w, "openqps_sessions_active", "gauge", "Live sessions by virtual proxy.")
		if err == nil {
			for _, p := range prefixes {
				if n, ok := counts[p]; ok {
					fmt.Fprintf(w, "openqps_sessions_active{vp=\"%s\"} %d\n", escape(p), n)
				}
			}
		}
		if r.StoreProbe != nil && err == nil {
			var d time.Duration
			d, err = r.StoreProbe(ctx)
			family(w, "openqps_store_probe_duration_seconds", "gauge", "Time one session lookup took at this scrape.")
			fmt.Fprintf(w, "openqps_store_probe_duration_seconds %s\n", strconv.FormatFloat(d.Seconds(), 'g', -1, 64))
		}
		family(w, "openqps_store_up", "gauge", "1 when the session store answered at this scrape.")
		up := 1
		if err != nil {
			up = 0
		}
		fmt.Fprintf(w, "openqps_store_up %d\n", up)
	}
	return w.Flush()
}

func family(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func writeCodes(w io.Writer, name, labels string, r *Requests) {
	sep := ""
	if labels != "" {
		sep = ","
	}
	for class := 1; class <= 5; class++ {
		fmt.Fprintf(w, "%s{%s%scode=\"%dxx\"} %d\n", name, labels, sep, class, r.codes[class].Load())
	}
	if n := r.codes[0].Load(); n > 0 {
		fmt.Fprintf(w, "%s{%s%scode=\"other\"} %d\n", name, labels, sep, n)
	}
}

func writeHistogram(w io.Writer, name, labels string, r *Requests) {
	sep := ""
	if labels != "" {
		sep = ","
	}
	var cum uint64
	for i, le := range latencyBuckets {
		cum += r.buckets[i].Load()
		fmt.Fprintf(w, "%s_bucket{%s%sle=\"%s\"} %d\n", name, labels, sep, strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	cum += r.buckets[len(latencyBuckets)].Load()
	fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, cum)
	brace := ""
	if labels != "" {
		brace = "{" + labels + "}"
	}
	sum := float64(r.sumNanos.Load()) / float64(time.Second)
	fmt.Fprintf(w, "%s_sum%s %s\n", name, brace, strconv.FormatFloat(sum, 'g', -1, 64))
	fmt.Fprintf(w, "%s_count%s %d\n", name, brace, cum)
}

// escape escapes a label value.
func escape(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// Handler serves the operations listener: /metrics, /healthz (the
// process is up) and /readyz (ready returns nil: the store answers and
// the listeners serve). It must never be served on the public front end.
func Handler(reg *Registry, ready func(ctx context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		reg.WriteText(r.Context(), w)
	})
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
