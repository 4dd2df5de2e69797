//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/pki"
	"github.com/openqps/openqps/internal/qpsapi"
)

// podman runs podman with the test's own storage and runtime settings
// (runc, as crun fails on machines like CI's; see test-infra.md).
type podman struct {
	t   *testing.T
	env []string
}

func (p podman) run(args ...string) (string, error) {
	cmd := exec.Command("podman", args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (p podman) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// newPodman skips the test when podman cannot run on this machine, and
// says why; past that point every problem is a failure.
func newPodman(t *testing.T) podman {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman is not installed (Debian: apt-get install podman runc): the container image is not tested")
	}
	if os.Geteuid() != 0 {
		t.Skip("the container test runs rootful podman (the back end listens on its bridge): run it as root")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	storage := filepath.Join(dir, "storage.conf")
	os.WriteFile(conf, []byte("[containers]\ndefault_ulimits=[\"nofile=1024:1024\",\"nproc=1024:1024\"]\n[engine]\nruntime=\"runc\"\n"), 0o600)
	os.WriteFile(storage, []byte("[storage]\ndriver=\"overlay\"\ngraphroot=\""+dir+"/graph\"\nrunroot=\""+dir+"/run\"\n"), 0o600)
	p := podman{t: t, env: append(os.Environ(), "CONTAINERS_CONF="+conf, "CONTAINERS_STORAGE_CONF="+storage)}
	if out, err := p.run("info"); err != nil {
		t.Skipf("podman cannot run here: %v\n%s", err, out)
	}
	return p
}

// TestContainerImageRunsTheSeedWorkflow builds the image with make
// image's script, starts it as a login module's site would (ports
// published on 127.0.0.1, configuration mounted, data in a volume) and
// runs the seed workflow through it to a back end on the host.
func TestContainerImageRunsTheSeedWorkflow(t *testing.T) {
	p := newPodman(t)
	image := "localhost/openqps-e2e:" + randomHex(4)
	name, volume := "openqps-e2e-"+randomHex(4), "openqps-e2e-data-"+randomHex(4)

	build := exec.Command("../scripts/image.sh")
	build.Env = append(p.env, "IMAGE="+image)
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	t.Logf("image built in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { p.run("rmi", "-f", image) })
	if user := p.must("image", "inspect", image, "--format", "{{.Config.User}}"); user != "65532:65532" {
		t.Errorf("image user %q, want the non-root 65532:65532", user)
	}
	if hc := p.must("image", "inspect", image, "--format", "{{.Config.Healthcheck.Test}}"); !strings.Contains(hc, "openqps healthcheck") {
		t.Errorf("image health check %q, want openqps healthcheck", hc)
	}

	// The back end listens on the bridge's gateway, which the container
	// reaches as host.containers.internal; its port is chosen first, since
	// the bridge exists only once a container runs.
	gateway := p.must("network", "inspect", "podman", "--format", "{{range .Subnets}}{{.Gateway}}{{end}}")
	backendPort := freePort(t)
	front, api := freePort(t), freePort(t)
	cfgDir := t.TempDir()
	os.Chmod(cfgDir, 0o755)
	os.WriteFile(filepath.Join(cfgDir, "openqps.yaml"), []byte(`data_dir: /var/lib/openqps
frontend: {listen: ":8443"}
api: {listen: ":4243"}
metrics: {listen: "127.0.0.1:9090"}
log: {format: json}
virtual_proxies:
  - prefix: sessionvp
    session_cookie_name: X-Qlik-Session-sessionvp
    authentication_module_redirect_uri: https://login.example.test/login
    backends: ["http://host.containers.internal:`+backendPort+`"]
`), 0o644)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := p.run("logs", name)
			t.Logf("container log:\n%s", out)
		}
		p.run("rm", "-f", "-t", "0", name)
		p.run("volume", "rm", "-f", volume)
	})
	p.must("run", "-d", "--name", name, "-p", "127.0.0.1:"+front+":8443", "-p", "127.0.0.1:"+api+":4243",
		"-v", cfgDir+":/etc/openqps:ro", "-v", volume+":/var/lib/openqps", image)

	token := randomHex(8)
	ln, err := net.Listen("tcp", net.JoinHostPort(gateway, backendPort))
	if err != nil {
		t.Fatalf("back end on the bridge %s: %v", gateway, err)
	}
	be := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "backend "+token+" user="+r.Header.Get("X-Qlik-User"))
	})}
	go be.Serve(ln)
	t.Cleanup(func() { be.Close() })

	// The trusted API answers once the process has created its
	// certificates in the volume; take the exported client certificate
	// from there, as a login module's administrator would.
	certs := filepath.Join(t.TempDir(), "certs")
	pxUntilWithin(t, 30*time.Second, "the container's trusted API accepts connections", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+api)
		if err != nil {
			return false
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err = c.Read(make([]byte, 1)) // a published port accepts before the process listens; then it is closed
		c.Close()
		return errors.Is(err, os.ErrDeadlineExceeded)
	})
	p.must("cp", name+":/var/lib/openqps/certs", certs)
	mount := p.must("volume", "inspect", volume, "--format", "{{.Mountpoint}}")
	if st, err := os.Stat(filepath.Join(mount, "certs", "client_key.pem")); err != nil {
		t.Fatal(err)
	} else if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 65532 {
		t.Errorf("client_key.pem in the volume belongs to uid %d, want 65532 (the process is not root)", uid)
	}
	cert, roots, err := pki.LoadClient(certs)
	if err != nil {
		t.Fatal(err)
	}
	client := qpsapi.NewClient("https://127.0.0.1:"+api, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots})
	defer client.CloseIdleConnections()
	sid := "aa051074-13a1-4f2a-842b-a64aa4d21001"
	if _, err := client.AddSession(context.Background(), "sessionvp", qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: "User1", SessionId: sid}); err != nil {
		t.Fatalf("POST /qps/sessionvp/session: %v", err)
	}

	browser := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
	defer browser.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "https://localhost:"+front+"/sessionvp/hub/", nil)
	req.AddCookie(&http.Cookie{Name: "X-Qlik-Session-sessionvp", Value: sid})
	resp, body := do(t, browser, req)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "backend "+token) || !strings.Contains(body, "UserId=User1") {
		t.Fatalf("GET /sessionvp/hub/ through the container: %d %q, want the back end's answer for DOMAIN\\User1", resp.StatusCode, body)
	}

	if out, err := p.run("healthcheck", "run", name); err != nil {
		t.Errorf("podman healthcheck run: %v %s", err, out)
	}
	if st := p.must("inspect", name, "--format", "{{.State.Health.Status}}"); st != "healthy" {
		t.Errorf("health %q, want healthy", st)
	}
	p.must("stop", "-t", "20", name)
	if code := p.must("inspect", name, "--format", "{{.State.ExitCode}}"); code != "0" {
		t.Errorf("exit code after podman stop %s, want 0 (SIGTERM shuts down cleanly)", code)
	}
}

// freePort is a port nothing on 127.0.0.1 listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(pxFreeAddr(t))
	return port
}

// pxUntilWithin is pxUntil with a deadline of its own (a container takes
// longer to start than a process).
func pxUntilWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
