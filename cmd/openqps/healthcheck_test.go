package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHealthcheckAsksTheMetricsListenerOfTheConfig(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	cfg := filepath.Join(t.TempDir(), "openqps.yaml")
	// ":port" listens everywhere; healthcheck dials it on loopback.
	os.WriteFile(cfg, []byte("metrics: {listen: \":"+port+"\"}\nvirtual_proxies:\n  - prefix: a\n    backends: [\"http://a\"]\n"), 0o600)

	if out, err := run(t, "healthcheck", "--config", cfg); err != nil || !strings.Contains(out, "healthy") {
		t.Fatalf("healthcheck: %q, %v; want healthy", out, err)
	}
	status = http.StatusServiceUnavailable
	if _, err := run(t, "healthcheck", "--config", cfg); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("healthcheck against a 503: %v, want unhealthy", err)
	}
	srv.Close()
	if _, err := run(t, "healthcheck", "--url", srv.URL+"/healthz"); err == nil {
		t.Fatal("healthcheck with nothing listening succeeded")
	}
}
