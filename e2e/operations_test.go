package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/server"
	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/storetest"
)

// opsStart runs openqps with its metrics listener and an audit file, on
// a store that sweeps expired sessions every few milliseconds; wrap, when
// set, wraps that store.
func opsStart(t *testing.T, wrap func(session.Store) session.Store) (*openqps, string) {
	t.Helper()
	be := newBackend(t)
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	cfg, err := config.Parse([]byte(`
data_dir: ` + t.TempDir() + `
frontend: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:0"}
audit: {file: ` + auditFile + `}
store: {type: memory}
virtual_proxies:
  - prefix: ""
    authentication_module_redirect_uri: ` + loginModuleURI + `
    backends: ["` + be.URL + `"]
  - prefix: sessionvp
    session_cookie_name: X-Qlik-Session-sessionvp
    authentication_module_redirect_uri: ` + loginModuleURI + `
    backends: ["` + be.URL + `"]
`))
	if err != nil {
		t.Fatal(err)
	}
	clock := storetest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	store := session.NewMemory(session.WithClock(clock.Now), session.WithSweepInterval(5*time.Millisecond))
	t.Cleanup(func() { store.Close() })
	var st session.Store = store
	if wrap != nil {
		st = wrap(store)
	}
	srv, err := server.Start(context.Background(), server.Options{Config: cfg, Log: testLogger(t), Store: st, Now: clock.Now, AuditOut: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	o := &openqps{Server: srv, Backend: be, Clock: clock, LoginURI: loginModuleURI,
		API: qpsapi.NewClient("https://"+srv.APIAddr, srv.Certs.ClientTLS())}
	t.Cleanup(o.API.CloseIdleConnections)
	return o, auditFile
}

func opsGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// opsWaitFor polls the metrics until one line is present, or fails after
// ten seconds.
func opsWaitFor(t *testing.T, o *openqps, line string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := opsGet(t, "http://"+o.MetricsAddr+"/metrics")
		if strings.Contains(body, line+"\n") {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %q:\n%s", line, body)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestAuditLogAndMetricsOfALoginDay drives sessions and tickets through
// their lives and checks the audit log and /metrics tell the story,
// without a secret in either.
func TestAuditLogAndMetricsOfALoginDay(t *testing.T) {
	o, auditFile := opsStart(t, nil)
	ctx := context.Background()

	id1, id2, idGone := randomHex(16), randomHex(16), randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "Alice", id1)
	o.addSession(t, "sessionvp", "DOMAIN", "Bob", id2)
	o.addSession(t, "", "DOMAIN", "Carol", idGone)
	if _, err := o.API.DeleteSession(ctx, "", idGone); err != nil {
		t.Fatal(err)
	}
	tk := o.ticketFor(t, "", "Dave")
	b := o.browser(t)
	if resp, _ := get(t, b, o.frontURL("/hub/?qlikTicket="+tk)); resp.StatusCode != http.StatusFound {
		t.Fatalf("ticket redemption: %d", resp.StatusCode)
	}
	if resp, _ := get(t, b, o.frontURL("/hub/")); resp.StatusCode != http.StatusOK {
		t.Fatalf("after ticket: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPut, o.frontURL("/hub/?qlikTicket="+tk), strings.NewReader("x"))
	if resp, _ := do(t, o.browser(t), req); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed ticket: %d", resp.StatusCode)
	}
	if resp, _ := get(t, o.browser(t), o.frontURL("/sessionvp/%2e%2e/qrs/about")); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("path trick: %d", resp.StatusCode)
	}
	// A refused request carrying a ticket in its query: the ticket is
	// not logged.
	tk2 := o.ticketFor(t, "", "Erin")
	if answers := attackSend(t, o.FrontendAddr, o.frontTLS(), "GET https://localhost/hub/?qlikTicket="+tk2+" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); len(answers) == 0 || answers[0].resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("absolute-form request: %v", answers)
	}
	if _, err := o.API.LogoutUser(ctx, "sessionvp", "DOMAIN", "Bob"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := o.apiCall(t, http.MethodGet, "/qps/session/"+id1, ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("API call without xrfkey: %d", resp.StatusCode)
	}
	// Alice's session (30 minutes of inactivity) expires.
	o.Clock.Advance(31 * time.Minute)
	metricsText := opsWaitFor(t, o, `openqps_events_total{event="session.expired"} 2`)

	for _, want := range []string{
		`openqps_events_total{event="session.added"} 3`,
		`openqps_events_total{event="session.deleted"} 1`,
		`openqps_events_total{event="ticket.issued"} 2`,
		`openqps_events_total{event="ticket.redeemed"} 1`,
		`openqps_events_total{event="ticket.rejected"} 1`,
		`openqps_events_total{event="user.logged_out"} 1`,
		`openqps_events_total{event="api.rejected"} 1`,
		`openqps_frontend_requests_total{code="2xx",vp=""} 1`,
		`openqps_frontend_requests_total{code="3xx",vp=""} 1`,
		`openqps_frontend_requests_total{code="4xx",vp=""} 2`,
		`openqps_frontend_requests_total{code="4xx",vp="sessionvp"} 1`,
		`openqps_sessions_active{vp="sessionvp"} 0`,
		`openqps_store_up 1`,
		`# TYPE openqps_store_probe_duration_seconds gauge`,
		`# TYPE openqps_frontend_request_duration_seconds histogram`,
		`openqps_frontend_request_duration_seconds_count{vp=""} 4`,
		`openqps_api_requests_total{code="2xx"} 7`,
		`openqps_api_requests_total{code="4xx"} 1`,
		`openqps_upstream_responses_total{code="2xx",vp=""} 1`,
		`openqps_upstream_response_duration_seconds_count{vp=""} 1`,
	} {
		if !strings.Contains(metricsText, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, metricsText)
		}
	}
	if want := `openqps_backend_up{backend="` + o.Backend.URL + `",vp=""} 1`; !strings.Contains(metricsText, want+"\n") {
		t.Errorf("metrics lack %q", want)
	}
	// The redeemed ticket made Dave a session; expiry took it too.
	if !strings.Contains(metricsText, `openqps_sessions_active{vp=""} 0`) {
		t.Errorf("active sessions of the default VP:\n%s", metricsText)
	}

	events := opsAuditEvents(t, auditFile)
	for _, want := range []string{"session.added", "session.deleted", "session.expired", "ticket.issued", "ticket.redeemed",
		"ticket.rejected", "user.logged_out", "api.call", "api.rejected", "frontend.rejected"} {
		if events[want] == 0 {
			t.Errorf("the audit log has no %s event", want)
		}
	}
	raw, _ := os.ReadFile(auditFile)
	for _, secret := range []string{id1, id2, idGone, tk, tk2} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the audit log contains the secret %s", secret)
		}
	}
	if !bytes.Contains(raw, []byte(`"caller":"CN=QlikClient"`)) {
		t.Error("api.call lines do not name the client certificate's subject")
	}
	if !bytes.Contains(raw, []byte(`"reason":"the ticket is unknown, expired or already used`)) {
		t.Error("the rejected ticket's reason is not in the audit log")
	}
}

// opsAuditEvents reads the audit log, checks every line is a JSON object
// with an event, and counts the events.
func opsAuditEvents(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line is not JSON: %q", sc.Text())
		}
		ev, _ := rec["event"].(string)
		if ev == "" || rec["time"] == nil {
			t.Errorf("audit line without event or time: %q", sc.Text())
		}
		counts[ev]++
	}
	return counts
}

func TestHealthEndpoints(t *testing.T) {
	failing := &opsFailingStore{}
	o, _ := opsStart(t, func(s session.Store) session.Store { failing.Store = s; return failing })
	if code, body := opsGet(t, "http://"+o.MetricsAddr+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := opsGet(t, "http://"+o.MetricsAddr+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if err := o.API.Alive(context.Background()); err != nil {
		t.Errorf("GET /qps/alive: %v", err)
	}
	// Nothing of the operations listener is on the front end.
	b := o.browser(t)
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		resp, body := get(t, b, o.frontURL(p))
		if resp.StatusCode == 200 || strings.Contains(body, "openqps_") {
			t.Errorf("front end %s: %d %.100q", p, resp.StatusCode, body)
		}
	}
	// When the store fails, /readyz and /metrics say so; /healthz does
	// not, the process is still up.
	failing.down.Store(true)
	if code, body := opsGet(t, "http://"+o.MetricsAddr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "session store") {
		t.Errorf("/readyz with the store down: %d %q", code, body)
	}
	if code, body := opsGet(t, "http://"+o.MetricsAddr+"/metrics"); code != 200 || !strings.Contains(body, "openqps_store_up 0\n") {
		t.Errorf("/metrics with the store down: %d, no openqps_store_up 0", code)
	}
	if code, _ := opsGet(t, "http://"+o.MetricsAddr+"/healthz"); code != 200 {
		t.Errorf("/healthz with the store down: %d, want 200", code)
	}
}

// opsFailingStore is a store whose reads fail while down is set.
type opsFailingStore struct {
	session.Store
	down atomic.Bool
}

func (s *opsFailingStore) Get(ctx context.Context, prefix, id string) (session.Session, error) {
	if s.down.Load() {
		return session.Session{}, errors.New("store unreachable")
	}
	return s.Store.Get(ctx, prefix, id)
}

func (s *opsFailingStore) List(ctx context.Context, prefix string) ([]session.Session, error) {
	if s.down.Load() {
		return nil, errors.New("store unreachable")
	}
	return s.Store.List(ctx, prefix)
}
