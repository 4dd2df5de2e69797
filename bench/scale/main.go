// Command scale measures how openqps behaves with many live sessions: it
// fills a memory store with -sessions sessions (two group attributes
// each, as typical), reports the process's resident memory, then serves
// the front end on loopback and measures authenticated GETs with wrk so
// the latency with 1k and 1M sessions can be compared.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/server"
	"github.com/openqps/openqps/internal/session"
)

func main() {
	n := flag.Int("sessions", 1000, "live sessions to hold")
	duration := flag.String("d", "5s", "wrk duration (empty: memory only)")
	conns := flag.Int("c", 32, "wrk connections")
	memProfile := flag.String("memprofile", "", "write a heap profile after filling the store")
	flag.Parse()

	store := session.NewMemory()
	ctx := context.Background()
	rssBefore := rss()
	start := time.Now()
	var probe string
	for i := 0; i < *n; i++ {
		id := session.NewID()
		if i == *n/2 {
			probe = id
		}
		err := store.Add(ctx, session.Session{
			Prefix: "bench", ID: id, UserDirectory: strings.Clone("CORP"), UserID: fmt.Sprintf("user%07d", i),
			// Fresh strings, as decoding each API request's JSON makes them.
			Attributes: []session.Attribute{
				{Key: strings.Clone("Group"), Value: strings.Clone("Sales")},
				{Key: strings.Clone("Group"), Value: strings.Clone("Europe")},
			},
			Timeout: time.Hour,
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	fill := time.Since(start)
	// A full collection marks everything the store holds: its duration is
	// what each GC cycle costs with this many sessions.
	gcStart := time.Now()
	runtime.GC()
	gcCycle := time.Since(gcStart)
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("sessions=%d fill=%s rss_mb=%.0f (empty process %.0f) heap_inuse_mb=%.0f bytes_per_session=%.0f gc_cycle=%s\n",
		*n, fill.Round(time.Millisecond), rss()/1e6, rssBefore/1e6, float64(ms.HeapInuse)/1e6, (rss()-rssBefore)/float64(max(*n, 1)),
		gcCycle.Round(10*time.Microsecond))
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	if *duration == "" || probe == "" {
		return
	}

	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(backend, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	dir, _ := os.MkdirTemp("", "openqps-scale")
	defer os.RemoveAll(dir)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
data_dir: %s
frontend: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
store: {type: memory}
virtual_proxies:
  - prefix: bench
    backends: ["http://%s"]
`, dir, backend.Addr())))
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.Start(ctx, server.Options{Config: cfg, Store: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	wrk := []string{"wrk"}
	if _, err := exec.LookPath("taskset"); err == nil {
		wrk = []string{"taskset", "-c", "1", "wrk"}
	}
	var gcBefore runtime.MemStats
	runtime.ReadMemStats(&gcBefore)
	out, err := exec.Command(wrk[0], append(wrk[1:], "-t1", fmt.Sprintf("-c%d", *conns), "-d"+*duration, "--latency",
		"-H", "Cookie: X-Qlik-Session-bench="+probe, "https://"+srv.FrontendAddr+"/bench/hub/")...).CombinedOutput()
	if err != nil {
		log.Fatalf("wrk: %v\n%s", err, out)
	}
	var rps, p50, p99 string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 2 && f[0] == "Requests/sec:":
			rps = f[1]
		case len(f) == 2 && f[0] == "50%":
			p50 = f[1]
		case len(f) == 2 && f[0] == "99%":
			p99 = f[1]
		case strings.Contains(sc.Text(), "Non-2xx"):
			log.Fatalf("wrk saw errors:\n%s", out)
		}
	}
	var gcAfter runtime.MemStats
	runtime.ReadMemStats(&gcAfter)
	fmt.Printf("sessions=%d rps=%s p50=%s p99=%s gc_cycles=%d gc_pause_total=%s\n", *n, rps, p50, p99,
		gcAfter.NumGC-gcBefore.NumGC, time.Duration(gcAfter.PauseTotalNs-gcBefore.PauseTotalNs).Round(time.Microsecond))
}

// rss is the resident set size of this process in bytes.
func rss() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb float64
			fmt.Sscanf(strings.TrimPrefix(line, "VmRSS:"), "%f", &kb)
			return kb * 1024
		}
	}
	return 0
}
