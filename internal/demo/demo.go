// Package demo is what `openqps serve` runs without a configuration
// file: a hub back end that shows who reached it, a login module that
// believes anyone and logs them in through the trusted API (the session
// API on sessionvp and the default virtual proxy, the ticket API on
// ticketvp), and the configuration that ties them together. Nothing
// outside this package and the CLI knows the demo exists.
package demo

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/qpsapi"
)

// MetricsListen is where the demo serves /metrics, /healthz and /readyz.
const MetricsListen = "127.0.0.1:9090"

// Demo is a running demo hub and login module.
type Demo struct {
	// HubURL is the hub's address, on a loopback port: browsers reach it
	// only through openqps.
	HubURL string
	hub    *http.Server
	login  *LoginModule
	done   chan struct{}
}

// Start serves the hub on a free loopback port.
func Start(log *slog.Logger) (*Demo, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo hub: %w", err)
	}
	d := &Demo{HubURL: "http://" + ln.Addr().String(), hub: &http.Server{Handler: Hub()}, done: make(chan struct{})}
	d.login = &LoginModule{CookieName: cookieName, Log: log}
	go func() {
		defer close(d.done)
		if err := d.hub.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("demo hub failed", "err", err)
		}
	}()
	return d, nil
}

// virtualProxies are the demo's virtual proxies and the login flow each
// uses.
var virtualProxies = []struct{ prefix, description, login string }{
	{"", "default virtual proxy (demo)", SessionLoginPath},
	{"sessionvp", "session API login (demo)", SessionLoginPath},
	{"ticketvp", "ticket API login (demo)", TicketLoginPath},
}

// Config is the demo's configuration: its virtual proxies, served by the
// hub, logging in through the login module; everything else the
// defaults. It is parsed as a user's file would be.
func (d *Demo) Config() *config.Config {
	var b strings.Builder
	// Log in with the group OpenqpsAdmins to open the console at /openqps/.
	fmt.Fprintf(&b, "metrics: {listen: %q}\nadmin: {attribute: Group=OpenqpsAdmins}\nvirtual_proxies:\n", MetricsListen)
	for _, vp := range virtualProxies {
		fmt.Fprintf(&b, "  - {prefix: %q, description: %q, authentication_module_redirect_uri: %q, backends: [%q]}\n",
			vp.prefix, vp.description, vp.login, d.HubURL)
	}
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		panic("demo configuration invalid: " + err.Error())
	}
	return cfg
}

// Local is what the front end serves outside every virtual proxy: the
// login module under /demo-login/.
func (d *Demo) Local() map[string]http.Handler {
	return map[string]http.Handler{LoginMount: d.login}
}

// Connect gives the login module its way to the trusted API at apiAddr,
// with the exported client certificate, once the server runs. Until
// then the login form answers 503.
func (d *Demo) Connect(apiAddr string, clientTLS *tls.Config) {
	clientTLS = clientTLS.Clone()
	clientTLS.ServerName = "localhost"
	_, port, _ := net.SplitHostPort(apiAddr)
	d.login.setAPI(qpsapi.NewClient("https://127.0.0.1:"+port, clientTLS))
}

// Close stops the hub and the login module's API connections.
func (d *Demo) Close() {
	if api := d.login.client(); api != nil {
		api.CloseIdleConnections()
	}
	d.hub.Close()
	<-d.done
}

// cookieName is the session cookie of a demo virtual proxy.
func cookieName(prefix string) (string, bool) {
	for _, vp := range virtualProxies {
		if vp.prefix == prefix {
			return config.CookieName(prefix), true
		}
	}
	return "", false
}
