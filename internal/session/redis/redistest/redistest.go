// Package redistest runs a throwaway redis-server for tests: on a free
// loopback port, with no persistence, stopped when the test ends. Tests
// never touch a shared Redis.
package redistest

import (
	"bufio"
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

// Server is a redis-server started by a test.
type Server struct {
	Addr string // 127.0.0.1:port
	t    testing.TB
	cmd  *exec.Cmd
	conf string   // configuration file, for a sentinel
	args []string // beyond the defaults
	dir  string   // working directory (cluster and sentinel files)
}

// Start runs redis-server on a free port and stops it when the test ends.
// It skips the test, saying how to install it, when the binary is missing.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server); scripts/test.sh installs it")
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), t: t}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// startWith runs a redis-server with extra arguments in dir.
func startWith(t testing.TB, dir string, args ...string) *Server {
	t.Helper()
	s := Start(t)
	s.Stop()
	s.args, s.dir = args, dir
	s.start()
	return s
}

// StartCluster runs a Redis Cluster of three masters (no replicas) and
// returns their addresses once every slot is served.
func StartCluster(t testing.TB) []string {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli is not installed (apt-get install redis-tools)")
	}
	var addrs []string
	for range 3 {
		// The cluster bus defaults to the port + 10000, which may be taken
		// or past 65535: give it a free port of its own.
		bus, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s := startWith(t, t.TempDir(), "--cluster-enabled", "yes", "--cluster-node-timeout", "5000",
			"--cluster-port", strconv.Itoa(bus))
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	out, err := exec.Command("redis-cli", append(args, "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range addrs { // every node must agree before it serves
		for {
			out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", portOf(addr), "cluster", "info").Output()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok within 20 s: %s", addr, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return addrs
}

// StartSentinel runs a master and one sentinel watching it under the
// name master, and returns the sentinel's address.
func StartSentinel(t testing.TB, master string) string {
	t.Helper()
	m := Start(t)
	dir := t.TempDir()
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %s 1\nsentinel down-after-milliseconds %s 5000\n", master, portOf(m.Addr), master)
	if err := os.WriteFile(filepath.Join(dir, "sentinel.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := Start(t)
	s.Stop()
	s.conf, s.args, s.dir = filepath.Join(dir, "sentinel.conf"), []string{"--sentinel"}, dir
	s.start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", portOf(s.Addr), "sentinel", "get-master-addr-by-name", master).Output()
		if strings.Contains(string(out), portOf(m.Addr)) {
			return s.Addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel does not know master %s within 20 s: %s", master, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs the server on s.Addr and waits until it accepts connections.
func (s *Server) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	var args []string
	if s.conf != "" {
		args = append(args, s.conf) // a configuration file comes first
	}
	args = append(args, "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning")
	cmd := exec.Command("redis-server", append(args, s.args...)...)
	cmd.Dir = s.dir
	dieWithTest(cmd)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for !s.answers() {
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("redis-server on %s did not answer within 10 s: %s", s.Addr, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answers reports whether the server answers PING.
func (s *Server) answers() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprint(c, "PING\r\n"); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// Stop kills the server (an outage, as far as clients can tell) and
// waits for it to exit. Calling it again does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Restart starts a fresh, empty server on the same address after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}
