// Command backend is the tiny back end the load benchmark measures
// against: it answers every request with a short body, over plain HTTP
// and, with -tls-cert/-tls-key, over HTTPS too (for "direct over TLS").
// Under /ws it is a websocket echo server, for the websocket memory figure.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"

	"github.com/openqps/openqps/bench/internal/websocket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "plain HTTP listen address")
	tlsAddr := flag.String("tls-addr", "", "HTTPS listen address (needs -tls-cert and -tls-key)")
	cert := flag.String("tls-cert", "", "server certificate (PEM)")
	key := flag.String("tls-key", "", "server key (PEM)")
	flag.Parse()

	body := []byte("hello from the benchmark back end\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			websocket.EchoHandler(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	if *tlsAddr != "" {
		// wrk drops its connections mid-handshake when a run ends: no
		// line per such connection.
		srv := &http.Server{Addr: *tlsAddr, Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
		go func() { log.Fatal(srv.ListenAndServeTLS(*cert, *key)) }()
	}
	log.Fatal(http.ListenAndServe(*addr, h))
}
