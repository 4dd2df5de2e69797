package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
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
	"github.com/openqps/openqps/internal/server"
)

// Process tests run the real openqps binary and talk to it only from the
// outside: listeners, the pid file, signals and its log.

// pxProcess is a running openqps binary.
type pxProcess struct {
	bin, dir, configFile string
	cmd                  *exec.Cmd
	log                  *pxLog // standard error
	stdout               *pxLog
	exited               chan error
	front, api           string // addresses
	o                    *openqps
}

// pxLog collects the process's log.
type pxLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *pxLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *pxLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// pxFreeAddr returns a loopback address that was free a moment ago.
func pxFreeAddr(t *testing.T) string {
	ln := listenLoopback(t)
	defer ln.Close()
	return ln.Addr().String()
}

// pxConfigYAML is a configuration with the given virtual proxies (YAML
// list items) on the process's addresses.
func (p *pxProcess) configYAML(vps string) string {
	return "data_dir: " + p.dir + "\nfrontend: {listen: \"" + p.front + "\", shutdown_timeout: 10s}\napi: {listen: \"" + p.api +
		"\"}\nstore: {type: memory}\nlog: {level: info}\nvirtual_proxies:\n" + vps
}

func (p *pxProcess) writeConfig(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(p.configFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pxStartProcess starts the binary with the virtual proxies vps and
// waits until its trusted API answers.
func pxStartProcess(t *testing.T, bin, vps string) *pxProcess {
	t.Helper()
	dir := t.TempDir()
	p := &pxProcess{bin: bin, dir: dir, configFile: filepath.Join(dir, "openqps.yaml"), log: &pxLog{}, stdout: &pxLog{},
		exited: make(chan error, 1), front: pxFreeAddr(t), api: pxFreeAddr(t)}
	p.writeConfig(t, p.configYAML(vps))
	p.cmd = exec.Command(bin, "serve", "--config", p.configFile)
	p.cmd.Stderr, p.cmd.Stdout = p.log, p.stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("openqps log:\n%s\nstandard output:\n%s", p.log, p.stdout)
		}
	})
	pxUntil(t, "openqps listens", func() bool {
		c, err := net.Dial("tcp", p.front)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	certs, _, err := pki.Ensure(pki.CertsDir(dir), pki.CADir(dir))
	if err != nil {
		t.Fatal(err)
	}
	p.o = &openqps{Server: &server.Server{Certs: certs, FrontendAddr: p.front, APIAddr: p.api},
		API: qpsapi.NewClient("https://"+p.api, certs.ClientTLS())}
	t.Cleanup(p.o.API.CloseIdleConnections)
	return p
}

func (p *pxProcess) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// logCount counts the log lines containing s.
func (p *pxProcess) logCount(s string) int { return strings.Count(p.log.String(), s) }

func pxRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func pxVP(prefix, backend, timeout string) string {
	return "  - prefix: " + prefix + "\n    session_inactivity_timeout: " + timeout + "\n    backends: [\"" + backend + "\"]\n"
}

// TestProcessLogIsOneStream: by default the process log is the one
// stream a terminal shows, each event once; nothing goes to standard
// output unless audit.file says so.
func TestProcessLogIsOneStream(t *testing.T) {
	bin := storesBuild(t)
	p := pxStartProcess(t, bin, pxVP("sessionvp", newBackend(t).URL, "30m"))
	id := randomHex(16)
	p.o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	pxUntil(t, "the session add is logged", func() bool { return p.logCount("event=session.added") > 0 })
	if n := p.logCount("session.added"); n != 1 {
		t.Errorf("session.added appears %d times in the log, want 1:\n%s", n, p.log)
	}
	if out := p.stdout.String(); out != "" {
		t.Errorf("standard output has %q, want nothing without audit.file", out)
	}
}

// TestProcessReloadKeepsSessionsAndWebsockets: SIGHUP (and openqps
// reload) with a changed configuration applies it to new requests while
// sessions and an open websocket live on; a broken file or a change that
// needs a restart is rejected and the old configuration keeps serving.
func TestProcessReloadKeepsSessionsAndWebsockets(t *testing.T) {
	bin := storesBuild(t)
	echo := pxNewEchoServer(t)
	plain := newBackend(t)
	p := pxStartProcess(t, bin, pxVP("sessionvp", echo.URL, "30m"))
	o := p.o
	ctx := context.Background()
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	ws, resp, body := pxDialWS(t, o, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+id)
	if ws == nil {
		t.Fatalf("upgrade: %d %s", resp.StatusCode, body)
	}
	echoes := func(msg string) {
		t.Helper()
		ws.conn.SetDeadline(time.Now().Add(5 * time.Second))
		ws.send(t, msg)
		if f := ws.read(t); !strings.HasSuffix(string(f.payload), ":"+msg) {
			t.Fatalf("echo %q", f.payload)
		}
	}
	echoes("before")

	// A changed timeout, a new virtual proxy and debug logging, by SIGHUP.
	debug := strings.Replace(p.configYAML(pxVP("sessionvp", echo.URL, "45m")+pxVP("newvp", plain.URL, "10m")), "level: info", "level: debug", 1)
	p.writeConfig(t, debug)
	p.signal(t, syscall.SIGHUP)
	pxUntil(t, "the reload is applied", func() bool { return p.logCount("configuration reloaded") == 1 })
	if p.logCount("websocket opened") != 0 {
		t.Fatal("debug lines logged at level info")
	}
	if ws2, _, _ := pxDialWS(t, o, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+id); ws2 == nil {
		t.Fatal("second websocket refused")
	}
	pxUntil(t, "log.level debug applies", func() bool { return p.logCount("websocket opened") == 1 })
	newID := randomHex(16)
	o.addSession(t, "newvp", "DOMAIN", "User2", newID)
	if resp, body := get(t, o.browser(t), o.frontURL("/newvp/hub/"), "Cookie", "X-Qlik-Session-newvp="+newID); resp.StatusCode != 200 {
		t.Fatalf("new virtual proxy after reload: %d %s", resp.StatusCode, body)
	}
	echoes("after reload")
	if s, err := o.API.GetSession(ctx, "sessionvp", id); err != nil || s == nil {
		t.Fatalf("session lost in the reload: %v", err)
	}

	// A broken file: openqps reload --config refuses to signal, and a
	// plain SIGHUP is rejected by the process, which keeps serving.
	p.writeConfig(t, "virtual_proxies:\n  - prefix: sessionvp\n    backends: [\"ftp://nowhere\"]\n")
	out, err := exec.Command(bin, "reload", "--config", p.configFile).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not reloading") || !strings.Contains(string(out), "line 3") {
		t.Errorf("openqps reload with a broken file: %v %s", err, out)
	}
	// openqps reload without --config signals anyway, and reports the
	// process's verdict: rejected, with the reason, exit status 1.
	out, err = exec.Command(bin, "reload", "--pid-file", filepath.Join(p.dir, "openqps.pid")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "reload rejected") || !strings.Contains(string(out), "backends[0]") {
		t.Errorf("openqps reload of a broken file without --config: %v %s", err, out)
	}
	pxUntil(t, "the broken file is rejected", func() bool { return p.logCount("reload rejected") == 1 })
	if !strings.Contains(p.log.String(), "backends[0]") {
		t.Error("the rejection does not name the bad key")
	}
	// A change only a restart can make is rejected too, here through the
	// trusted API's reload call, which answers with the reason.
	p.writeConfig(t, strings.Replace(p.configYAML(pxVP("sessionvp", echo.URL, "45m")), p.front, pxFreeAddr(t), 1))
	out, err = exec.Command(bin, "reload", "--api", "https://"+p.api, "--certs", filepath.Join(p.dir, "certs")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "frontend.listen changed") {
		t.Errorf("openqps reload --api with a changed listener: %v %s", err, out)
	}
	resp, body = do(t, o.apiClient(o.Certs.Client), pxRequest(t, http.MethodPost, "https://"+p.api+"/openqps/reload"))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "xrfkey") {
		t.Errorf("reload call without an Xrfkey: %d %s", resp.StatusCode, body)
	}
	if n := p.logCount("reload rejected"); n != 2 {
		t.Errorf("%d rejections logged, want 2", n)
	}
	if resp, _ := get(t, o.browser(t), o.frontURL("/newvp/hub/"), "Cookie", "X-Qlik-Session-newvp="+newID); resp.StatusCode != 200 {
		t.Errorf("after rejected reloads the running configuration changed: %d", resp.StatusCode)
	}
	echoes("after rejected reloads")

	// openqps reload with a good file removes newvp; sessionvp's websocket
	// stays open.
	p.writeConfig(t, p.configYAML(pxVP("sessionvp", echo.URL, "45m")))
	out, err = exec.Command(bin, "reload", "--config", p.configFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "reloaded: ") || !strings.Contains(string(out), "virtual proxies: ") {
		t.Fatalf("openqps reload: %v %s", err, out)
	}
	pxUntil(t, "the second reload is applied", func() bool { return p.logCount("configuration reloaded") == 2 })
	if resp, _ := get(t, o.browser(t), o.frontURL("/newvp/hub/"), "Cookie", "X-Qlik-Session-newvp="+newID); resp.StatusCode == 200 {
		t.Error("a removed virtual proxy still serves")
	}
	echoes("after the second reload")

	// And back, through the trusted API: the answer says it is done.
	p.writeConfig(t, p.configYAML(pxVP("sessionvp", echo.URL, "45m")+pxVP("newvp", plain.URL, "10m")))
	out, err = exec.Command(bin, "reload", "--api", "https://"+p.api, "--certs", filepath.Join(p.dir, "certs")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"virtual_proxies":2`) {
		t.Fatalf("openqps reload --api: %v %s", err, out)
	}
	// The store kept newvp's session while the virtual proxy was gone.
	if resp, body := get(t, o.browser(t), o.frontURL("/newvp/hub/"), "Cookie", "X-Qlik-Session-newvp="+newID); resp.StatusCode != 200 {
		t.Errorf("virtual proxy added back through the API reload: %d %s", resp.StatusCode, body)
	}
	echoes("after the API reload")
}

// TestProcessSIGTERMDrainsInFlightRequests: on SIGTERM a slow request in
// flight completes, open websockets get OnSessionClosed, the process
// exits cleanly and its pid file is gone.
func TestProcessSIGTERMDrainsInFlightRequests(t *testing.T) {
	bin := storesBuild(t)
	started := make(chan struct{}, 1)
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			conn, rw, _ := http.NewResponseController(w).Hijack()
			defer conn.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
				pxWSAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
			rw.Flush()
			io.Copy(io.Discard, rw)
			return
		}
		started <- struct{}{}
		time.Sleep(700 * time.Millisecond)
		io.WriteString(w, "slow answer")
	})}
	ln := listenLoopback(t)
	go slow.Serve(ln)
	t.Cleanup(func() { slow.Close() })
	p := pxStartProcess(t, bin, pxVP("sessionvp", "http://"+ln.Addr().String(), "30m"))
	id := randomHex(16)
	p.o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	pidFile := filepath.Join(p.dir, "openqps.pid")
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatalf("no pid file: %v", err)
	}
	ws, resp, body := pxDialWS(t, p.o, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+id)
	if ws == nil {
		t.Fatalf("upgrade: %d %s", resp.StatusCode, body)
	}

	type answer struct {
		status int
		body   string
		err    error
	}
	done := make(chan answer, 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.o.Certs.CAPool}}, Timeout: 10 * time.Second}
	go func() {
		req, _ := http.NewRequest(http.MethodGet, p.o.frontURL("/sessionvp/slow"), nil)
		req.Header.Set("Cookie", "X-Qlik-Session-sessionvp="+id)
		resp, err := client.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, string(b), err}
	}()
	<-started
	p.signal(t, syscall.SIGTERM)
	ws.expectNotice(t, "OnSessionClosed")
	a := <-done
	if a.err != nil || a.status != http.StatusOK || a.body != "slow answer" {
		t.Errorf("in-flight request across SIGTERM: %d %q %v", a.status, a.body, a.err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		if err != nil {
			t.Errorf("openqps exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("openqps did not exit after SIGTERM")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	if _, err := net.Dial("tcp", p.front); err == nil {
		t.Error("the front end still accepts connections")
	}
}
