// Command wsload measures the memory openqps spends per open proxied
// websocket: it reads openqps's resident memory (-pid), opens -n
// websockets through openqps to the benchmark back end's echo endpoint,
// sends a message on each and waits for its echo, and reads the resident
// memory again with all of them still open.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/openqps/openqps/bench/internal/websocket"
)

func main() {
	target := flag.String("url", "", "websocket URL through openqps (https:// or http://)")
	cookie := flag.String("cookie", "", "Cookie header carrying the session")
	rootPEM := flag.String("root", "", "CA certificate (PEM) that signed openqps's server certificate")
	n := flag.Int("n", 10000, "websockets to hold open")
	workers := flag.Int("c", 64, "connections opened in parallel")
	pid := flag.Int("pid", 0, "openqps's process id, whose memory is measured")
	hold := flag.Duration("hold", 0, "keep the websockets open this long after measuring (to profile openqps)")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		log.Fatalf("-url %q: want an https:// or http:// URL", *target)
	}
	var tlsConf *tls.Config
	if u.Scheme == "https" {
		roots := x509.NewCertPool()
		if pem, err := os.ReadFile(*rootPEM); err != nil || !roots.AppendCertsFromPEM(pem) {
			log.Fatalf("-root %q: cannot read a CA certificate from it", *rootPEM)
		}
		tlsConf = &tls.Config{RootCAs: roots, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(64)}
	}

	before := rss(*pid)
	start := time.Now()
	conns := make([]*wsConn, *n)
	next := make(chan int)
	errs := make(chan error, *workers)
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := open(u, *cookie, tlsConf)
				if err == nil {
					err = c.echo(fmt.Sprintf("hello %d", i))
				}
				if err != nil {
					errs <- fmt.Errorf("websocket %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	var failed error
feed:
	for i := range *n {
		select {
		case next <- i:
		case failed = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if failed == nil && len(errs) > 0 {
		failed = <-errs
	}
	if failed != nil {
		log.Fatal(failed)
	}
	opened := time.Since(start)

	// A second message on every connection, so each proxied pair has
	// carried traffic both ways while all of them are open.
	for i, c := range conns {
		if err := c.echo(fmt.Sprintf("again %d", i)); err != nil {
			log.Fatalf("websocket %d: %v", i, err)
		}
	}
	after := rss(*pid)
	fmt.Printf("websockets=%d open=%s rss_before_mb=%.0f rss_after_mb=%.0f per_websocket_kb=%.1f\n",
		*n, opened.Round(time.Millisecond), before/1e6, after/1e6, (after-before)/float64(*n)/1024)
	time.Sleep(*hold)
	for _, c := range conns {
		websocket.WriteFrame(c.conn, websocket.OpClose, nil, true)
		c.conn.Close()
	}
}

type wsConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// open dials the front end and performs the websocket handshake.
func open(u *url.URL, cookie string, tlsConf *tls.Config) (*wsConn, error) {
	var conn net.Conn
	var err error
	d := &net.Dialer{Timeout: 10 * time.Second}
	if tlsConf != nil {
		conn, err = tls.DialWithDialer(d, "tcp", u.Host, tlsConf)
	} else {
		conn, err = d.Dial("tcp", u.Host)
	}
	if err != nil {
		return nil, err
	}
	key := websocket.NewKey()
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key +
		"\r\nCookie: " + cookie + "\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		conn.Close()
		return nil, err
	}
	r := bufio.NewReaderSize(conn, 512)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != websocket.Accept(key) {
		conn.Close()
		return nil, fmt.Errorf("handshake answered %s (Sec-WebSocket-Accept %q)", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	return &wsConn{conn: conn, r: r}, nil
}

// echo sends msg and waits for the back end to send it back.
func (c *wsConn) echo(msg string) error {
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if err := websocket.WriteFrame(c.conn, websocket.OpText, []byte(msg), true); err != nil {
		return err
	}
	op, payload, err := websocket.ReadFrame(c.r)
	if err != nil {
		return err
	}
	if op != websocket.OpText || !bytes.Equal(payload, []byte(msg)) {
		return errors.New("the echo differs from the message sent")
	}
	return nil
}

// rss is the resident set size of process pid in bytes.
func rss(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		log.Fatalf("-pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscanf(rest, "%f", &kb)
			return kb * 1024
		}
	}
	log.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
