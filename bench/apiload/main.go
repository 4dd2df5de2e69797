// Command apiload measures session adds per second through the trusted
// API over mutual TLS with keep-alive, as a busy login module would call
// it: -c workers post new sessions for -d, and it prints the rate and
// latency percentiles of acknowledged adds. With -n it stops after that
// many adds, to fill a store for the restart figure.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openqps/openqps/internal/pki"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/session"

	"crypto/tls"
)

func main() {
	api := flag.String("api", "https://127.0.0.1:4243", "trusted API base URL")
	certs := flag.String("certs", "openqps-data/certs", "directory with client.pem, client_key.pem, root.pem")
	vp := flag.String("vp", "", "virtual proxy prefix")
	workers := flag.Int("c", 32, "concurrent callers")
	duration := flag.Duration("d", 5*time.Second, "how long to run")
	limit := flag.Int64("n", 0, "stop after this many adds (0: run for -d); -d still bounds the run")
	h2 := flag.Bool("h2", false, "use HTTP/2 (one multiplexed connection) instead of HTTP/1.1 keep-alive")
	flag.Parse()

	cert, roots, err := pki.LoadClient(*certs)
	if err != nil {
		log.Fatal(err)
	}
	// HTTP/1.1 with one keep-alive connection per worker, as many login
	// module instances would call (-h2 multiplexes all on one connection).
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "localhost"}
	transport := &http.Transport{TLSClientConfig: tlsConf, MaxIdleConnsPerHost: *workers, ForceAttemptHTTP2: *h2}
	if !*h2 {
		transport.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	client := qpsapi.NewClientHTTP(*api, &http.Client{Transport: transport, Timeout: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()

	var mu sync.Mutex
	var latencies []time.Duration
	var failures int
	var wg sync.WaitGroup
	var started atomic.Int64
	start := time.Now()
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for ctx.Err() == nil && (*limit == 0 || started.Add(1) <= *limit) {
				t0 := time.Now()
				_, err := client.AddSession(context.Background(), *vp, qpsapi.UserRequest{
					UserDirectory: "BENCH", UserId: "user" + session.NewID()[:8], SessionId: session.NewID(),
					Attributes: qpsapi.Attributes{{Key: "Group", Value: "A"}, {Key: "Group", Value: "B"}},
				})
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			failures += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(latencies) == 0 {
		fmt.Fprintln(os.Stderr, "no session was added")
		os.Exit(1)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	fmt.Printf("adds=%d failures=%d seconds=%.2f adds_per_sec=%.0f p50=%s p99=%s\n",
		len(latencies), failures, elapsed.Seconds(), float64(len(latencies))/elapsed.Seconds(), pct(0.50), pct(0.99))
}
