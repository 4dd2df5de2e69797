// Package kdctest runs a throwaway MIT Kerberos KDC for tests: a realm
// created in the test's temporary directory, served on free loopback
// ports, stopped when the test ends. Nothing system-wide is read or
// changed: every MIT command gets KRB5_CONFIG and KRB5_KDC_PROFILE
// pointing into that directory.
package kdctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// KDC is a running krb5kdc with its realm.
type KDC struct {
	Realm string
	// Addr is the KDC's 127.0.0.1:port (TCP and UDP).
	Addr string
	// Dir holds the database, the configuration and the keytabs.
	Dir string
	// Krb5Conf is the client configuration naming this KDC for Realm,
	// with localhost mapped to Realm.
	Krb5Conf string
	t        testing.TB
}

// Binaries are the MIT programs a KDC needs; Debian's krb5-kdc,
// krb5-admin-server and krb5-user ship them.
var Binaries = []string{"krb5kdc", "kdb5_util", "kadmin.local", "kinit"}

// Missing returns the first of Binaries not on PATH, or "".
func Missing() string {
	for _, b := range Binaries {
		if _, err := exec.LookPath(b); err != nil {
			return b
		}
	}
	return ""
}

// Start creates realm and serves it. Without the MIT binaries the test is
// skipped with the reason, except under CI (CI=true), where it fails:
// scripts/test.sh installs them, so a missing one there is a broken
// setup, not a machine that cannot run the test.
func Start(t testing.TB, realm string) *KDC {
	t.Helper()
	if b := Missing(); b != "" {
		msg := fmt.Sprintf("kdctest: %s not found: apt-get install krb5-kdc krb5-admin-server krb5-user", b)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	port := freePort(t)
	k := &KDC{Realm: realm, Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, Krb5Conf: filepath.Join(dir, "krb5.conf"), t: t}
	krb5 := fmt.Sprintf(`[libdefaults]
	default_realm = %[1]s
	dns_lookup_kdc = false
	dns_lookup_realm = false
	rdns = false
	dns_canonicalize_hostname = false
	udp_preference_limit = 1
	default_ccache_name = FILE:%[2]s/cc
[realms]
	%[1]s = {
		kdc = %[3]s
	}
[domain_realm]
	localhost = %[1]s
`, realm, dir, k.Addr)
	kdc := fmt.Sprintf(`[kdcdefaults]
	kdc_ports = %[3]d
	kdc_tcp_ports = %[3]d
	kdc_listen = 127.0.0.1:%[3]d
	kdc_tcp_listen = 127.0.0.1:%[3]d
[realms]
	%[1]s = {
		database_name = %[2]s/principal
		key_stash_file = %[2]s/stash
		acl_file = %[2]s/kadm5.acl
		max_life = 10h
		max_renewable_life = 0
	}
[logging]
	kdc = FILE:%[2]s/kdc.log
`, realm, dir, port)
	k.write("krb5.conf", krb5)
	k.write("kdc.conf", kdc)
	k.write("kadm5.acl", "")
	k.run("kdb5_util", "create", "-s", "-r", realm, "-P", "master-"+strconv.Itoa(port))
	cmd := exec.Command("krb5kdc", "-n", "-r", realm, "-P", filepath.Join(dir, "kdc.pid"))
	cmd.Env = k.Env()
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start krb5kdc: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	k.awaitListening(exited)
	return k
}

// Env is the environment for MIT commands and gokrb5 clients of this
// realm: the process's own, with the Kerberos files pointing here.
func (k *KDC) Env() []string {
	return append(os.Environ(),
		"KRB5_CONFIG="+k.Krb5Conf,
		"KRB5_KDC_PROFILE="+filepath.Join(k.Dir, "kdc.conf"),
		"KRB5CCNAME=FILE:"+filepath.Join(k.Dir, "cc"),
		"KRB5RCACHEDIR="+k.Dir,
	)
}

// Kadmin runs one kadmin.local query on the realm's database.
func (k *KDC) Kadmin(query string) string {
	k.t.Helper()
	return k.run("kadmin.local", "-r", k.Realm, "-q", query)
}

// AddUser adds name@Realm with password.
func (k *KDC) AddUser(name, password string) {
	k.t.Helper()
	k.Kadmin(fmt.Sprintf("addprinc -pw %s %s@%s", password, name, k.Realm))
}

// AddService adds a service principal (e.g. HTTP/localhost) with a random
// key.
func (k *KDC) AddService(name string) {
	k.t.Helper()
	k.Kadmin(fmt.Sprintf("addprinc -randkey %s@%s", name, k.Realm))
}

// Keytab exports the keys of principals (without realm) into a new keytab
// file and returns its path. Exporting changes the keys (kadmin's ktadd
// randomises them), so export each principal once.
func (k *KDC) Keytab(file string, principals ...string) string {
	k.t.Helper()
	path := filepath.Join(k.Dir, file)
	for _, p := range principals {
		k.Kadmin(fmt.Sprintf("ktadd -k %s %s@%s", path, p, k.Realm))
	}
	return path
}

// Command is an MIT client command (kinit, curl --negotiate, klist) run in
// this realm's environment, with its own credential cache ccache.
func (k *KDC) Command(ccache string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(k.Env(), "KRB5CCNAME=FILE:"+ccache)
	return cmd
}

func (k *KDC) write(name, content string) {
	k.t.Helper()
	if err := os.WriteFile(filepath.Join(k.Dir, name), []byte(content), 0o600); err != nil {
		k.t.Fatal(err)
	}
}

func (k *KDC) run(name string, args ...string) string {
	k.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = k.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		k.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// awaitListening waits until the KDC accepts TCP connections, or fails the
// test when it exits or takes longer than a KDC ever does.
func (k *KDC) awaitListening(exited <-chan error) {
	k.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", k.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(k.Dir, "kdc.log"))
			k.t.Fatalf("krb5kdc exited: %v\n%s", err, log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("krb5kdc did not listen on %s within 10s", k.Addr)
		}
	}
}

// freePort returns a port free for both TCP and UDP on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}
