package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdUnitVerifies runs systemd-analyze verify on
// deploy/openqps.service, with its binary path pointed at a real build.
func TestSystemdUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed: the unit is not verified")
	}
	bin := storesBuild(t)
	unit, err := os.ReadFile("../deploy/openqps.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "Type=notify") || !strings.Contains(string(unit), "ExecReload=/usr/local/bin/openqps reload") {
		t.Fatal("the unit lost Type=notify or its ExecReload")
	}
	path := filepath.Join(t.TempDir(), "openqps.service")
	os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/openqps", bin)), 0o644)
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestServeNotifiesSystemd stands in for systemd: a unixgram socket in
// $NOTIFY_SOCKET, as systemd passes to a Type=notify service. openqps
// must say READY=1 only once it serves, RELOADING=1 and READY=1 around a
// SIGHUP reload, and STOPPING=1 on SIGTERM.
func TestServeNotifiesSystemd(t *testing.T) {
	bin := storesBuild(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Skipf("unixgram sockets are not available here: %v", err)
	}
	defer conn.Close()
	front, api := pxFreeAddr(t), pxFreeAddr(t)
	cfg := filepath.Join(dir, "openqps.yaml")
	os.WriteFile(cfg, []byte("data_dir: "+dir+"\nfrontend: {listen: \""+front+"\"}\napi: {listen: \""+api+"\"}\nstore: {type: memory}\n"+
		"virtual_proxies:\n  - prefix: \"\"\n    authentication_module_redirect_uri: https://login.example.test/\n    backends: [\"http://127.0.0.1:1\"]\n"), 0o600)
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	log := &pxLog{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("openqps log:\n%s", log)
		}
	})
	next := func(want string) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		if got := string(buf[:n]); got != want {
			t.Fatalf("systemd was told %q, want %q", got, want)
		}
	}

	next("READY=1")
	for _, addr := range []string{front, api} { // ready means serving
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("READY=1 came before %s listened: %v", addr, err)
		}
		c.Close()
	}
	cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1")
	next("READY=1")
	cmd.Process.Signal(syscall.SIGTERM)
	next("STOPPING=1")
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("openqps exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("openqps did not exit after SIGTERM")
	}
}
