package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/server"
)

// startServer runs a real openqps on loopback ports with generated
// certificates in a temporary data directory.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	cfg, err := config.Parse([]byte(`
data_dir: ` + t.TempDir() + `
frontend: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
store: {type: memory}
virtual_proxies:
  - prefix: sessionvp
    backends: ["http://127.0.0.1:9"]
`))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(context.Background(), server.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}

// run executes the CLI in-process and returns what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestCLISessionAndUserCommands(t *testing.T) {
	srv := startServer(t)
	api := "--api=https://localhost:" + portOf(srv.APIAddr)
	certs := "--certs=" + filepath.Join(srv.Config.DataDir, "certs")

	out, err := run(t, "session", "add", api, certs, "--vp", "sessionvp", "--user", `DOMAIN\User1`,
		"--id", "aa051074-13a1-4f2a-842b-a64aa4d21001", "--attr", "Group=Sales")
	if err != nil {
		t.Fatalf("session add: %v\n%s", err, out)
	}
	if !strings.Contains(out, "cookie  X-Qlik-Session-sessionvp=aa051074-13a1-4f2a-842b-a64aa4d21001") {
		t.Errorf("session add printed %q", out)
	}

	out, err = run(t, "session", "get", "aa051074-13a1-4f2a-842b-a64aa4d21001", api, certs, "--vp", "sessionvp")
	if err != nil || !strings.Contains(out, `DOMAIN\User1`) || !strings.Contains(out, "Group=Sales") {
		t.Errorf("session get: %v %q", err, out)
	}
	out, err = run(t, "session", "ls", api, certs, "--vp", "sessionvp", "--json")
	if err != nil || !strings.Contains(out, `"SessionId": "aa051074-13a1-4f2a-842b-a64aa4d21001"`) {
		t.Errorf("session ls: %v %q", err, out)
	}
	out, err = run(t, "user", "ls", `domain\user1`, api, certs, "--vp", "sessionvp")
	if err != nil || !strings.Contains(out, "aa051074-13a1-4f2a-842b-a64aa4d21001") {
		t.Errorf("user ls: %v %q", err, out)
	}
	out, err = run(t, "user", "logout", `DOMAIN\User1`, api, certs, "--vp", "sessionvp")
	if err != nil || !strings.Contains(out, "1 session(s) ended") {
		t.Errorf("user logout: %v %q", err, out)
	}
	out, err = run(t, "session", "get", "aa051074-13a1-4f2a-842b-a64aa4d21001", api, certs, "--vp", "sessionvp")
	if err == nil || !strings.Contains(err.Error(), "no session") {
		t.Errorf("session get after logout: %v %q", err, out)
	}
	out, err = run(t, "session", "add", api, certs, "--vp", "sessionvp", "--user", "nobackslash")
	if err == nil || !strings.Contains(err.Error(), `DIRECTORY\USERID`) {
		t.Errorf("bad --user: %v %q", err, out)
	}
	out, err = run(t, "ticket", api, certs, "--vp", "sessionvp", "--user", `DOMAIN\User1`)
	if err != nil || !strings.HasPrefix(out, "ticket ") {
		t.Errorf("ticket: %v %q", err, out)
	}
	_, err = run(t, "session", "rm", "aa051074-13a1-4f2a-842b-a64aa4d21001", api, certs, "--vp", "sessionvp")
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("rm of a deleted session: %v", err)
	}
}

func TestCLIWithoutCertificatesSaysWhatToDo(t *testing.T) {
	_, err := run(t, "session", "ls", "--certs", filepath.Join(t.TempDir(), "none"))
	if err == nil || !strings.Contains(err.Error(), "openqps serve") {
		t.Errorf("got %v", err)
	}
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// TestCertsCommandKeepsCAKeyApart: `openqps certs` lists the exported
// certificates and, separately, the CA key; on a data directory of the
// old layout it moves the key out of the exported directory and says so.
func TestCertsCommandKeepsCAKeyApart(t *testing.T) {
	dataDir := t.TempDir()
	out, err := run(t, "certs", "--data-dir", dataDir)
	if err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	caKey := filepath.Join(dataDir, "ca", "root_key.pem")
	if !strings.Contains(out, "stays on this host") || !strings.Contains(out, caKey) || strings.Contains(out, filepath.Join(dataDir, "certs", "root_key.pem")) {
		t.Errorf("certs printed %q, want the CA key listed apart, in %s", out, caKey)
	}

	// The layout of earlier versions: the key beside client.pem.
	old := filepath.Join(dataDir, "certs", "root_key.pem")
	if err := os.Rename(caKey, old); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "certs", "--data-dir", dataDir)
	if err != nil {
		t.Fatalf("certs on the old layout: %v\n%s", err, out)
	}
	if !strings.Contains(out, "moved the CA private key from "+old) {
		t.Errorf("certs printed %q, want it to say the key was moved", out)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("%s still exists: %v", old, err)
	}
	if _, err := os.Stat(caKey); err != nil {
		t.Errorf("the moved key: %v", err)
	}
}
