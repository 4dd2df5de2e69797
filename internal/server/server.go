// Package server assembles one openqps process: certificates, the session
// store, the trusted API and front-end listeners and, with no
// configuration, the demo hub and login module. cmd/openqps and the
// end-to-end tests start openqps through it.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/console"
	"github.com/openqps/openqps/internal/metrics"
	"github.com/openqps/openqps/internal/pki"
	"github.com/openqps/openqps/internal/proxy"
	"github.com/openqps/openqps/internal/qliklog"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/rawsock"
	"github.com/openqps/openqps/internal/session"
)

// Options configure Start.
type Options struct {
	Config *config.Config
	Log    *slog.Logger
	// Store, when set, is used instead of the one the configuration names
	// (tests inject a store with a fake clock).
	Store session.Store
	// Now is the clock of the API and front end; nil is time.Now.
	Now func() time.Time
	// AuditOut receives the audit log when audit.file is empty; nil is
	// none (its events are in the process log anyway).
	AuditOut io.Writer
	// ActivityInterval is how often websocket traffic is recorded as
	// session activity; 0 is the front end's default.
	ActivityInterval time.Duration
	// ConfigFile is the file Config was read from, read again by
	// ReloadFile; empty for the demo. DataDir, when set, overrides the
	// file's data_dir (serve --data-dir), on reloads too.
	ConfigFile string
	DataDir    string
	// LogLevel, when set, is the level of Log; Reload sets it to the new
	// configuration's log.level.
	LogLevel *slog.LevelVar
	// Local are handlers the front end serves outside every virtual
	// proxy, by first path segment (the demo's login module).
	Local map[string]http.Handler
}

// Server is a running openqps.
type Server struct {
	// Config is the configuration the server started with; see
	// CurrentConfig for the one in force after a Reload.
	Config   *config.Config
	Certs    *pki.Bundle
	Store    session.Store
	Frontend *proxy.Proxy
	API      *qpsapi.Server

	// FrontendAddr and APIAddr are the addresses the listeners bound
	// (useful with port 0).
	FrontendAddr string
	APIAddr      string
	// HTTPAddr is the plain-HTTP front listener's address; empty unless
	// frontend.http_listen is set.
	HTTPAddr string
	// Metrics counts requests and events; MetricsAddr is the address of
	// its listener, empty unless metrics.listen is set.
	Metrics     *metrics.Registry
	MetricsAddr string

	log        *slog.Logger
	servers    []*http.Server
	ownStore   bool
	reloadMu   sync.Mutex
	configFile string
	dataDir    string
	logLevel   *slog.LevelVar
	cfg        atomic.Pointer[config.Config] // set by Reload
	wg         sync.WaitGroup
	errs       chan error

	auditFile      *os.File        // audit.file, when set
	qlikLogs       *qliklog.Logs   // log.qlik, when set
	auditOnly      *slog.Logger    // writes to the audit log only
	recentEvents   *console.Recent // the last audit events, for the console
	stopWatch      context.CancelFunc
	listenerFailed atomic.Bool
}

// Start opens the listeners and serves until Shutdown.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	cfg := opts.Config
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Server{Config: cfg, log: log, errs: make(chan error, 8), configFile: opts.ConfigFile, dataDir: opts.DataDir, logLevel: opts.LogLevel}
	defer func() {
		if err != nil {
			s.Shutdown(context.Background())
		}
	}()

	if log, err = s.openAudit(opts, log); err != nil {
		return nil, err
	}
	s.log = log
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if s.Certs, err = loadCerts(cfg, log); err != nil {
		return nil, err
	}
	s.Store = opts.Store
	if s.Store == nil {
		if s.Store, err = OpenStore(ctx, cfg, log); err != nil {
			return nil, err
		}
		s.ownStore = true
	}

	apiLn, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return nil, fmt.Errorf("trusted API: listen on %s: %w", cfg.API.Listen, err)
	}
	feLn, err := net.Listen("tcp", cfg.Frontend.Listen)
	if err != nil {
		apiLn.Close()
		return nil, fmt.Errorf("front end: listen on %s: %w", cfg.Frontend.Listen, err)
	}
	var httpLn net.Listener
	if cfg.Frontend.HTTPListen != "" {
		if httpLn, err = net.Listen("tcp", cfg.Frontend.HTTPListen); err != nil {
			apiLn.Close()
			feLn.Close()
			return nil, fmt.Errorf("plain-HTTP front end: listen on %s: %w", cfg.Frontend.HTTPListen, err)
		}
		s.HTTPAddr = httpLn.Addr().String()
	}
	closeListeners := func() {
		apiLn.Close()
		feLn.Close()
		if httpLn != nil {
			httpLn.Close()
		}
	}
	s.APIAddr, s.FrontendAddr = apiLn.Addr().String(), feLn.Addr().String()
	_, apiPort, _ := net.SplitHostPort(s.APIAddr)
	port, _ := strconv.Atoi(apiPort)

	s.API = qpsapi.New(cfg, s.Store, log, opts.Now)
	adminConsole := console.New(console.Options{Store: s.Store, Config: s.CurrentConfig, Reload: s.ReloadFile,
		Backends: func() []metrics.Backend { return s.Frontend.Backends() }, Log: log, Now: opts.Now,
		Websockets: func(prefix, id string) int { return s.Frontend.Websockets(prefix, id) }, Recent: s.recentEvents})
	s.Frontend, err = proxy.New(cfg, s.Store, log, proxy.Options{APIPort: port, Now: opts.Now, Local: opts.Local, Hosts: certNames(s.Certs), ActivityInterval: opts.ActivityInterval, Metrics: s.Metrics,
		HTTPSPort: listenPort(feLn), HTTPPort: listenPort(httpLn), Console: adminConsole})
	if err != nil {
		closeListeners()
		return nil, err
	}

	if err := s.startTelemetry(ctx); err != nil {
		closeListeners()
		return nil, err
	}
	apiTLS := s.Certs.APITLS()
	verifyClient := apiTLS.VerifyConnection
	apiTLS.VerifyConnection = func(cs tls.ConnectionState) error {
		err := verifyClient(cs)
		if err != nil {
			log.Warn("trusted API refused a client certificate", "event", "api.rejected", "error", "client certificate refused", "detail", err.Error())
		}
		return err
	}
	apiHandler := &guard{next: reloadCall{s: s, next: qpsapi.WithOpenAPI(s.API)}, log: log, listener: "trusted API", bodyTimeout: cfg.Timeouts.RequestBody,
		metrics: s.Metrics, audit: s.auditOnly, logPath: s.API.LogPath}
	s.serve(&http.Server{Handler: apiHandler, TLSConfig: apiTLS}, tls.NewListener(apiLn, apiTLS), "trusted API")
	feTLS := s.Certs.ServerTLS()
	feHandler := &guard{next: s.Frontend, log: log, listener: "front end", bodyTimeout: cfg.Timeouts.RequestBody,
		metrics: s.Metrics, frontend: true}
	// The front end's connections carry every proxied request: with
	// transport.raw_sockets on, their reads and writes skip the
	// scheduler's system-call bookkeeping (rawsock explains why and what
	// it saves).
	if cfg.Transport.RawSockets == config.On {
		feLn = rawsock.Listener{Listener: feLn}
		if httpLn != nil {
			httpLn = rawsock.Listener{Listener: httpLn}
		}
	}
	s.serve(&http.Server{Handler: feHandler, TLSConfig: feTLS}, tls.NewListener(feLn, feTLS), "front end")
	if httpLn != nil {
		s.serve(&http.Server{Handler: feHandler}, httpLn, "plain-HTTP front end")
		log.Info("plain-HTTP front end listening", "addr", "http://"+displayAddr(s.HTTPAddr))
	}

	log.Info("openqps started", "frontend", "https://"+displayAddr(s.FrontendAddr), "api", "https://"+displayAddr(s.APIAddr),
		"store", cfg.Store.Type, "virtual_proxies", len(cfg.VirtualProxies), "upstream_transport", cfg.Transport.Upstream, "raw_sockets", cfg.Transport.RawSockets)
	return s, nil
}

func (s *Server) serve(srv *http.Server, ln net.Listener, name string) {
	srv.ReadHeaderTimeout = s.Config.Timeouts.ReadHeader
	srv.IdleTimeout = s.Config.Timeouts.Idle
	srv.MaxHeaderBytes = 16 << 10
	srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	s.servers = append(s.servers, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.listenerFailed.Store(true)
			s.log.Error("listener failed", "listener", name, "err", err)
			s.errs <- fmt.Errorf("%s: %w", name, err)
		}
	}()
}

// Err reports a listener that failed; nil while all serve.
func (s *Server) Err() <-chan error { return s.errs }

// Shutdown stops accepting, lets in-flight requests finish until ctx
// ends, and closes the store if Start opened it.
func (s *Server) Shutdown(ctx context.Context) error {
	// Every listener stops accepting at once and drains in parallel;
	// hijacked websockets, unknown to http.Server.Shutdown, get their
	// notice and close meanwhile.
	errc := make(chan error, len(s.servers)+1)
	for _, srv := range s.servers {
		go func() {
			err := srv.Shutdown(ctx)
			if err != nil {
				srv.Close()
			}
			errc <- err
		}()
	}
	go func() {
		if s.Frontend == nil {
			errc <- nil
			return
		}
		if err := s.Frontend.CloseWebsockets(ctx); err != nil {
			errc <- fmt.Errorf("close websockets: %w", err)
			return
		}
		errc <- nil
	}()
	var errs []error
	for range len(s.servers) + 1 {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	if s.stopWatch != nil {
		s.stopWatch()
	}
	s.wg.Wait()
	if s.auditFile != nil {
		errs = append(errs, s.auditFile.Close())
	}
	if s.qlikLogs != nil {
		errs = append(errs, s.qlikLogs.Close())
	}
	if s.Frontend != nil {
		s.Frontend.Close()
	}
	if s.ownStore && s.Store != nil {
		errs = append(errs, s.Store.Close())
	}
	return errors.Join(errs...)
}

func loadCerts(cfg *config.Config, log *slog.Logger) (*pki.Bundle, error) {
	if cfg.TLS.CA != "" {
		b, err := pki.Load(cfg.TLS.CA, cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		return b, nil
	}
	b, created, err := pki.Ensure(pki.CertsDir(cfg.DataDir), pki.CADir(cfg.DataDir))
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	if b.MovedCAKey != "" {
		log.Warn("moved the CA private key out of the exported certificate directory", "from", b.MovedCAKey,
			"to", filepath.Join(b.CADir, "root_key.pem"),
			"note", "copies of "+b.Dir+" made before still hold it: delete root_key.pem from them")
	}
	if created {
		log.Info("created certificates", "dir", b.Dir,
			"files", "root.pem client.pem client_key.pem client.pfx server.pem server_key.pem", "ca_key", filepath.Join(b.CADir, "root_key.pem"))
	}
	return b, nil
}

// certNames are the DNS names and IP addresses of the server certificate:
// the names browsers can reach the front end by without a warning.
// listenPort is the port ln is bound to; 0 for no listener.
func listenPort(ln net.Listener) int {
	if ln == nil {
		return 0
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

func certNames(b *pki.Bundle) []string {
	if len(b.Server.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(b.Server.Certificate[0])
	if err != nil {
		return nil
	}
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
