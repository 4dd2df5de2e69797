// Command scale measures how openqps behaves with many live sessions.
//
// With -sessions N it fills a memory store with N sessions (two group
// attributes each, as typical) and reports the process's resident memory,
// the bytes per session and how long a full GC cycle takes over them.
//
// With -compare 1000,1000000 it starts one child process per count, each
// holding that many sessions behind a real HTTPS front end, and measures
// authenticated GETs with wrk against the children in turn over -rounds
// rounds, so machine noise hits all alike; it prints the median p50/p99 of
// each and the p99 ratio of the largest count to the smallest (the lookup
// cost must not grow with the count).
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
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/gcpace"
	"github.com/openqps/openqps/internal/server"
	"github.com/openqps/openqps/internal/session"
)

func main() {
	n := flag.Int("sessions", 1000, "live sessions to hold")
	serve := flag.Bool("serve", false, "after filling, serve the front end, print its URL and cookie, and run until stdin closes (used by -compare)")
	compare := flag.String("compare", "", "comma-separated session counts to compare front-end latency across, e.g. 1000,1000000")
	rounds := flag.Int("rounds", 3, "wrk rounds per count with -compare")
	duration := flag.String("d", "5s", "wrk duration of each round")
	conns := flag.Int("c", 32, "wrk connections")
	memProfile := flag.String("memprofile", "", "write a heap profile after filling the store")
	flag.Parse()

	if *compare != "" {
		compareLatency(strings.Split(*compare, ","), *rounds, *duration, *conns)
		return
	}
	store, probe := fill(*n, *memProfile)
	if !*serve {
		return
	}
	defer gcpace.Start().Stop() // as openqps serve does
	url, stop := serveFrontend(store)
	defer stop()
	fmt.Printf("ready %s X-Qlik-Session-bench=%s\n", url, probe)
	io.Copy(io.Discard, os.Stdin) // until the parent is done with us
}

// fill adds n sessions to a new memory store, prints what they cost, and
// returns the store and the id of a session in the middle.
func fill(n int, memProfile string) (*session.Memory, string) {
	store := session.NewMemory()
	ctx := context.Background()
	rssBefore := rss()
	start := time.Now()
	probe := session.NewID()
	for i := 0; i < n; i++ {
		id := session.NewID()
		if i == n/2 {
			id = probe
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
	if n == 0 {
		store.Add(ctx, session.Session{Prefix: "bench", ID: probe, UserDirectory: "CORP", UserID: "probe", Timeout: time.Hour})
	}
	elapsed := time.Since(start)
	// A full collection marks everything the store holds: its duration is
	// what each GC cycle costs with this many sessions.
	gcStart := time.Now()
	runtime.GC()
	gcCycle := time.Since(gcStart)
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	perSession := "-"
	if n > 0 {
		perSession = fmt.Sprintf("%.0f", (rss()-rssBefore)/float64(n))
	}
	fmt.Printf("sessions=%d fill=%s rss_mb=%.0f (empty process %.0f) heap_inuse_mb=%.0f bytes_per_session=%s gc_cycle=%s\n",
		n, elapsed.Round(time.Millisecond), rss()/1e6, rssBefore/1e6, float64(ms.HeapInuse)/1e6, perSession,
		gcCycle.Round(10*time.Microsecond))
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	return store, probe
}

// serveFrontend starts openqps's servers on loopback with the store, in
// front of a tiny back end, and returns the front end's URL.
func serveFrontend(store session.Store) (string, func()) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(backend, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	dir, err := os.MkdirTemp("", "openqps-scale")
	if err != nil {
		log.Fatal(err)
	}
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
	ctx := context.Background()
	srv, err := server.Start(ctx, server.Options{Config: cfg, Store: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	return "https://" + srv.FrontendAddr + "/bench/hub/", func() {
		srv.Shutdown(ctx)
		os.RemoveAll(dir)
	}
}

// child is a -serve process holding one count of sessions.
type child struct {
	n        string
	url      string
	cookie   string
	cmd      *exec.Cmd
	stdin    io.Closer
	p50, p99 []float64 // milliseconds, one per round
}

func compareLatency(counts []string, rounds int, duration string, conns int) {
	var children []*child
	defer func() {
		for _, c := range children {
			c.stdin.Close()
			c.cmd.Wait()
		}
	}()
	for _, n := range counts {
		c := &child{n: strings.TrimSpace(n)}
		c.cmd = exec.Command(os.Args[0], "-sessions", c.n, "-serve")
		c.cmd.Stderr = os.Stderr
		stdin, err := c.cmd.StdinPipe()
		if err != nil {
			log.Fatal(err)
		}
		c.stdin = stdin
		out, err := c.cmd.StdoutPipe()
		if err != nil {
			log.Fatal(err)
		}
		if err := c.cmd.Start(); err != nil {
			log.Fatal(err)
		}
		children = append(children, c)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "ready" {
				c.url, c.cookie = f[1], f[2]
				break
			}
		}
		if c.url == "" {
			log.Fatalf("the child holding %s sessions did not start", c.n)
		}
		go io.Copy(io.Discard, out)
	}
	for range rounds {
		for _, c := range children {
			p50, p99 := runWrk(c.url, c.cookie, duration, conns)
			c.p50, c.p99 = append(c.p50, p50), append(c.p99, p99)
		}
	}
	for _, c := range children {
		fmt.Printf("sessions=%s p50=%.2fms p99=%.2fms (medians of %d rounds)\n", c.n, median(c.p50), median(c.p99), rounds)
	}
	// The ratio is taken within each round, between runs made one after
	// the other, then the median over rounds: a machine that slows down
	// for a while slows both runs of a round alike.
	first, last := children[0], children[len(children)-1]
	ratios := make([]float64, rounds)
	for i := range ratios {
		ratios[i] = last.p99[i] / first.p99[i]
	}
	fmt.Printf("p99 with %s sessions / p99 with %s = %.2f (median of the rounds' ratios, %.2f-%.2f)\n",
		last.n, first.n, median(ratios), slices.Min(ratios), slices.Max(ratios))
}

var latencyLine = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)

// runWrk measures authenticated GETs against url and returns p50 and p99
// in milliseconds. wrk runs on core 1 when taskset is there.
func runWrk(url, cookie, duration string, conns int) (p50, p99 float64) {
	args := []string{"wrk", "-t1", fmt.Sprintf("-c%d", conns), "-d" + duration, "--latency", "-H", "Cookie: " + cookie, url}
	if _, err := exec.LookPath("taskset"); err == nil {
		args = append([]string{"taskset", "-c", "1"}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		log.Fatalf("wrk: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "Non-2xx") {
		log.Fatalf("wrk saw errors:\n%s", out)
	}
	for _, m := range latencyLine.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		v *= map[string]float64{"us": 1e-3, "ms": 1, "s": 1e3}[m[3]]
		if m[1] == "50" {
			p50 = v
		} else {
			p99 = v
		}
	}
	if p50 == 0 || p99 == 0 {
		log.Fatalf("no latency percentiles in wrk's output:\n%s", out)
	}
	return p50, p99
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// rss is the resident set size of this process in bytes.
func rss() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscanf(rest, "%f", &kb)
			return kb * 1024
		}
	}
	return 0
}
