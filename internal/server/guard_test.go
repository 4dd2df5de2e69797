package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/metrics"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/session"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestGuardTurnsAPanicIntoA500(t *testing.T) {
	g := &guard{log: quietLog(), listener: "test", next: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom at 10.0.0.7")
	})}
	for accept, want := range map[string]string{"application/json": `"error":"internal error"`, "text/html": "<h1>500"} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/hub/", nil)
		r.Header.Set("Accept", accept)
		g.ServeHTTP(w, r)
		if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), want) {
			t.Errorf("Accept %s: %d %s", accept, w.Code, w.Body)
		}
		if strings.Contains(w.Body.String(), "boom") || strings.Contains(w.Body.String(), "goroutine") {
			t.Errorf("the answer leaks the panic: %s", w.Body)
		}
	}
}

func TestGuardPassesErrAbortHandlerOn(t *testing.T) {
	g := &guard{log: quietLog(), next: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	})}
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", v)
		}
	}()
	g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
}

// BenchmarkGuard is what every front-end request pays for the guard:
// the status recorder and the metrics.
func BenchmarkGuard(b *testing.B) {
	g := &guard{log: quietLog(), frontend: true, bodyTimeout: time.Minute, metrics: metrics.New([]string{"sales", "hr"}),
		next: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })}
	r := httptest.NewRequest(http.MethodGet, "/sales/hub/", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		g.ServeHTTP(w, r)
	}
}

// TestGuardLogsAnAPIPanicWithoutTheSessionID: the log line of a panic on
// the trusted API names the path as the API's own log lines do, with the
// session id hashed.
func TestGuardLogsAnAPIPanicWithoutTheSessionID(t *testing.T) {
	cfg, err := config.Parse([]byte("virtual_proxies:\n  - prefix: sessionvp\n    authentication_module_redirect_uri: https://login.example.test/\n    backends: [\"http://127.0.0.1:9\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	store := session.NewMemory()
	defer store.Close()
	api := qpsapi.New(cfg, store, quietLog(), nil)
	g := &guard{log: slog.New(slog.NewTextHandler(&logs, nil)), listener: "trusted API", logPath: api.LogPath,
		next: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })}
	const id = "aa051074-13a1-4f2a-842b-a64aa4d21001"
	g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, "/qps/sessionvp/session/"+id, nil))
	if !strings.Contains(logs.String(), "handler panicked") || strings.Contains(logs.String(), id) {
		t.Errorf("panic log %q: want the panic logged without the session id", logs.String())
	}
}

// TestGuardCountsOnlyWebsocketUpgrades: an upgrade to anything else (h2c)
// is a request the front end refuses, not a websocket requested.
func TestGuardCountsOnlyWebsocketUpgrades(t *testing.T) {
	m := metrics.New([]string{"vp"})
	g := &guard{log: quietLog(), frontend: true, metrics: m,
		next: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) })}
	for upgrade, want := range map[string]float64{"h2c": 0, "websocket": 1} {
		before := websocketsRequested(t, m)
		r := httptest.NewRequest(http.MethodGet, "/vp/app/", nil)
		r.Header.Set("Upgrade", upgrade)
		r.Header.Set("Connection", "Upgrade")
		g.ServeHTTP(httptest.NewRecorder(), r)
		if got := websocketsRequested(t, m) - before; got != want {
			t.Errorf("Upgrade: %s counted %v websockets, want %v", upgrade, got, want)
		}
	}
}

func websocketsRequested(t *testing.T, m *metrics.Registry) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "openqps_websockets_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no openqps_websockets_total")
	return 0
}
