package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/pki"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/session/redis/redistest"
)

// These tests run the real openqps binary as separate processes: killed
// with SIGKILL, or two nodes sharing one Redis.

var storesBinary struct {
	once sync.Once
	path string
	err  error
}

// storesBuild builds cmd/openqps once per test run.
func storesBuild(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the openqps binary; skipped with -short")
	}
	storesBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "openqps-e2e-bin")
		if err != nil {
			storesBinary.err = err
			return
		}
		storesBinary.path = filepath.Join(dir, "openqps")
		out, err := exec.Command("go", "build", "-o", storesBinary.path, "../cmd/openqps").CombinedOutput()
		if err != nil {
			storesBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if storesBinary.err != nil {
		t.Fatal(storesBinary.err)
	}
	return storesBinary.path
}

// storesProc is one running openqps process.
type storesProc struct {
	cmd     *exec.Cmd
	dataDir string
	API     *qpsapi.Client
	apiURL  string
	front   string
	tls     *tls.Config // trusts openqps's CA
	exited  chan struct{}
}

// storesConfig writes a configuration with the given store section.
func storesConfig(t *testing.T, dataDir, store string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "openqps.yaml")
	yaml := `
data_dir: ` + dataDir + `
frontend: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
store: ` + store + `
log: {format: json}
virtual_proxies:
  - prefix: sessionvp
    session_cookie_name: X-Qlik-Session-sessionvp
    authentication_module_redirect_uri: https://login.example.test/login
    backends: ["http://127.0.0.1:9"]
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// storesStart runs openqps serve and waits for its "openqps started" line.
func storesStart(t *testing.T, binary, configFile, dataDir string) *storesProc {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--config", configFile)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &storesProc{cmd: cmd, dataDir: dataDir, exited: make(chan struct{})}
	t.Cleanup(p.kill)
	started := make(chan map[string]any, 1)
	var logged strings.Builder
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logged.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "openqps started" {
				started <- line
			}
		}
		cmd.Wait()
		close(p.exited)
	}()
	select {
	case line := <-started:
		p.apiURL, _ = line["api"].(string)
		p.front, _ = line["frontend"].(string)
	case <-p.exited:
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("openqps exited before starting:\n%s", logged.String())
	case <-time.After(30 * time.Second):
		t.Fatal("openqps did not start within 30 s")
	}
	cert, roots, err := pki.LoadClient(filepath.Join(dataDir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	p.tls = &tls.Config{RootCAs: roots}
	p.API = qpsapi.NewClient(p.apiURL, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}})
	t.Cleanup(p.API.CloseIdleConnections)
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *storesProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// TestStoresCrashLosesNoAcknowledgedSession kills openqps with SIGKILL at
// a random moment while writers add sessions as fast as they can, then
// restarts it: every session whose add was acknowledged (201) must be
// there, intact. Three rounds on the same store file.
func TestStoresCrashLosesNoAcknowledgedSession(t *testing.T) {
	binary := storesBuild(t)
	dataDir := t.TempDir()
	configFile := storesConfig(t, dataDir, "{type: embedded}")
	acked := map[string]string{} // session id → user id
	const rounds, writers = 3, 8
	for round := range rounds {
		p := storesStart(t, binary, configFile, dataDir)
		storesCheckAll(t, p, acked, round)
		var mu sync.Mutex
		var wg sync.WaitGroup
		var attempts int
		for w := range writers {
			wg.Go(func() {
				for i := 0; ; i++ {
					id, user := randomHex(16), fmt.Sprintf("User%d-%d-%d", round, w, i)
					mu.Lock()
					attempts++
					mu.Unlock()
					_, err := p.API.AddSession(context.Background(), "sessionvp", qpsapi.UserRequest{UserDirectory: "CRASH", UserId: user, SessionId: id})
					if err != nil {
						return // the server is gone
					}
					mu.Lock()
					acked[id] = user
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond) // the random moment of the crash
		p.kill()
		wg.Wait()
		p.API.CloseIdleConnections()
		t.Logf("round %d: killed with SIGKILL after %d acknowledged adds in all (%d attempted this round)", round+1, len(acked), attempts)
	}
	p := storesStart(t, binary, configFile, dataDir)
	storesCheckAll(t, p, acked, rounds)
}

// storesCheckAll requires every acknowledged session to be in the store,
// with its user.
func storesCheckAll(t *testing.T, p *storesProc, acked map[string]string, round int) {
	t.Helper()
	list, err := p.API.ListSessions(context.Background(), "sessionvp")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, s := range list {
		found[s.SessionId] = s.UserId
	}
	missing := 0
	for id, user := range acked {
		if got, ok := found[id]; !ok || got != user {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("after restart %d: %d of %d acknowledged sessions missing or changed", round, missing, len(acked))
	}
	if round > 0 {
		t.Logf("after restart %d: %d/%d acknowledged sessions present (%d in the store)", round, len(acked), len(acked), len(list))
	}
}

// TestStoresRedisTwoProcesses runs two openqps processes on one Redis:
// a session added on A works on B, a delete through B's API is refused
// on A within 100 ms, and a ticket from A is redeemed on B once.
func TestStoresRedisTwoProcesses(t *testing.T) {
	binary := storesBuild(t)
	srv := redistest.Start(t)
	store := fmt.Sprintf("{type: redis, redis: {addresses: [%q]}}", srv.Addr)
	dataA, dataB := t.TempDir(), t.TempDir()
	a := storesStart(t, binary, storesConfig(t, dataA, store), dataA)
	// B uses A's certificates, as nodes of one site do.
	if err := os.CopyFS(filepath.Join(dataB, "certs"), os.DirFS(filepath.Join(dataA, "certs"))); err != nil {
		t.Fatal(err)
	}
	b := storesStart(t, binary, storesConfig(t, dataB, store), dataB)
	ctx := context.Background()

	id := randomHex(16)
	if _, err := a.API.AddSession(ctx, "sessionvp", qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: "User1", SessionId: id}); err != nil {
		t.Fatal(err)
	}
	if got := storesProcStatus(t, b, "/sessionvp/hub/", id); got != 502 {
		// The back end (port 9) is closed: 502 means openqps accepted the
		// session and tried to forward.
		t.Fatalf("session added on A, used on B: %d, want 502 from forwarding", got)
	}
	if got := storesProcStatus(t, a, "/sessionvp/hub/", id); got != 502 {
		t.Fatalf("session on A: %d, want 502 from forwarding", got)
	}
	deleted := time.Now()
	if _, err := b.API.DeleteSession(ctx, "sessionvp", id); err != nil {
		t.Fatal(err)
	}
	for storesProcStatus(t, a, "/sessionvp/hub/", id) != 302 {
		if time.Since(deleted) > 100*time.Millisecond {
			t.Fatal("session deleted through B still accepted on A after 100 ms")
		}
	}
	t.Logf("two processes: delete through B's API refused on A after %s", time.Since(deleted))

	tk, err := a.API.Ticket(ctx, "sessionvp", qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: "User2"})
	if err != nil {
		t.Fatal(err)
	}
	first, gotCookie := storesProcGet(t, b, "/sessionvp/hub/?qlikTicket="+tk.Ticket, "")
	again, gotAgain := storesProcGet(t, a, "/sessionvp/hub/?qlikTicket="+tk.Ticket, "")
	if first != 302 || !gotCookie || gotAgain {
		t.Fatalf("ticket from A: %d on B (session cookie %v), then %d on A (session cookie %v); want one session only",
			first, gotCookie, again, gotAgain)
	}
}

// storesProcStatus requests path on the front end, with the session
// cookie when id is set, and returns the status without following
// redirects.
func storesProcStatus(t *testing.T, p *storesProc, path, id string) int {
	t.Helper()
	status, _ := storesProcGet(t, p, path, id)
	return status
}

// storesProcGet is storesProcStatus that also reports whether the answer
// set a session cookie.
func storesProcGet(t *testing.T, p *storesProc, path, id string) (status int, sessionCookie bool) {
	t.Helper()
	c := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: p.tls},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, p.front+path, nil)
	if id != "" {
		req.AddCookie(&http.Cookie{Name: "X-Qlik-Session-sessionvp", Value: id})
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "X-Qlik-Session-sessionvp" && ck.Value != "" {
			sessionCookie = true
		}
	}
	return resp.StatusCode, sessionCookie
}
