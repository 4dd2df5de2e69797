package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/httperror"
	"github.com/openqps/openqps/internal/qpsapi"
)

// ReloadFile reads the configuration file the server was started with
// (Options.ConfigFile) again and applies it with Reload. SIGHUP and the
// trusted API's reload call come here.
func (s *Server) ReloadFile() error {
	if s.configFile == "" {
		return errors.New("openqps was started without a configuration file (the demo); there is nothing to reload")
	}
	cfg, err := config.Load(s.configFile)
	if err != nil {
		return fmt.Errorf("%w (nothing was reloaded)", err)
	}
	if s.dataDir != "" {
		cfg.DataDir = s.dataDir
	}
	return s.Reload(cfg)
}

// ReloadPath is the trusted API's reload call: POST it with an Xrfkey, as
// every trusted call. It lies outside /qps/ so that it can never be taken
// for a virtual proxy prefix.
const ReloadPath = "/openqps/reload"

// reloadCall serves ReloadPath on the trusted API listener (which has
// already verified the caller's client certificate) and hands every
// other path to next.
type reloadCall struct {
	s    *Server
	next http.Handler
}

func (h reloadCall) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != ReloadPath {
		h.next.ServeHTTP(w, r)
		return
	}
	refuse := func(status int, msg, detail string) {
		h.s.log.Warn("api request rejected", "event", "api.rejected", "status", status, "method", r.Method,
			"path", r.URL.Path, "error", msg, "detail", detail, "remote", r.RemoteAddr)
		httperror.WriteJSON(w, status, msg, detail)
	}
	switch {
	case r.TLS == nil || len(r.TLS.VerifiedChains) == 0:
		refuse(http.StatusForbidden, "client certificate required", "call the trusted API with a client certificate issued by openqps's CA")
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", "POST")
		refuse(http.StatusMethodNotAllowed, "method not allowed", "POST "+ReloadPath)
		return
	}
	if err := qpsapi.CheckXrfkey(r); err != nil {
		refuse(http.StatusForbidden, "xrfkey", err.Error())
		return
	}
	if err := h.s.ReloadFile(); err != nil {
		// Its own log line, at error level: the operator asked for a
		// reload and the running configuration stays.
		h.s.log.Error("reload rejected; the running configuration stays", "event", "config.reload_rejected",
			"caller", r.TLS.VerifiedChains[0][0].Subject.String(), "err", err)
		httperror.WriteJSON(w, http.StatusConflict, "reload rejected", err.Error())
		return
	}
	body, _ := json.Marshal(map[string]any{"reloaded": true, "virtual_proxies": len(h.s.CurrentConfig().VirtualProxies)})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// Reload applies a new configuration to the running server: requests that
// start afterwards see it; requests in flight finish under the old one.
// Sessions are kept (the store is not touched), and open websockets stay
// open unless their virtual proxy was removed.
//
// What binds resources at start — listen addresses, certificates, the
// store, the data directory, the metrics listener, the audit file, the
// listener timeouts and the log format — cannot change without a restart. A new
// configuration that changes any of them is rejected as a whole, naming
// them, and the old configuration keeps running; so is one that the front
// end cannot build. Reload is safe to call concurrently with serving; calls
// are serialised.
func (s *Server) Reload(cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.CurrentConfig()
	if fixed := restartOnly(old, cfg); len(fixed) > 0 {
		return fmt.Errorf("%s changed; these apply only at start: restart openqps, or put back the running values (nothing was reloaded)", strings.Join(fixed, ", "))
	}
	if err := s.Frontend.SetConfig(cfg); err != nil {
		return fmt.Errorf("front end: %w (nothing was reloaded)", err)
	}
	s.API.SetConfig(cfg)
	if s.logLevel != nil {
		s.logLevel.UnmarshalText([]byte(cfg.Log.Level)) // validated with the config
	}
	s.cfg.Store(cfg)
	s.log.Info("configuration reloaded", "event", "config.reloaded", "virtual_proxies", len(cfg.VirtualProxies))
	return nil
}

// CurrentConfig is the configuration in force: the one Start was given,
// or the last one Reload applied.
func (s *Server) CurrentConfig() *config.Config {
	if c := s.cfg.Load(); c != nil {
		return c
	}
	return s.Config
}

// restartOnly names the settings that differ between a and b and that
// only a restart can change.
func restartOnly(a, b *config.Config) []string {
	var changed []string
	for _, f := range []struct {
		key  string
		a, b any
	}{
		{"data_dir", a.DataDir, b.DataDir},
		{"frontend.listen", a.Frontend.Listen, b.Frontend.Listen},
		{"frontend.http_listen", a.Frontend.HTTPListen, b.Frontend.HTTPListen},
		{"api.listen", a.API.Listen, b.API.Listen},
		{"tls", a.TLS, b.TLS},
		{"store", a.Store, b.Store},
		{"metrics", a.Metrics, b.Metrics},
		{"audit", a.Audit, b.Audit},
		{"timeouts", a.Timeouts, b.Timeouts},
		{"log.format", a.Log.Format, b.Log.Format},
		{"log.qlik", a.Log.Qlik, b.Log.Qlik},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			changed = append(changed, f.key)
		}
	}
	return changed
}
