package server

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/openqps/openqps/internal/config"
)

// Reload applies a new configuration to the running server: requests that
// start afterwards see it; requests in flight finish under the old one.
// Sessions are kept (the store is not touched), and open websockets stay
// open unless their virtual proxy was removed.
//
// What binds resources at start — listen addresses, certificates, the
// store, the data directory, the metrics listener, the audit file and the
// listener timeouts — cannot change without a restart. A new
// configuration that changes any of them is rejected as a whole, naming
// them, and the old configuration keeps running; so is one that the front
// end cannot build. Reload is safe to call concurrently with serving; calls
// are serialised.
func (s *Server) Reload(cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.CurrentConfig()
	if old.Demo {
		return errors.New("the demo runs without a configuration file; there is nothing to reload")
	}
	if fixed := restartOnly(old, cfg); len(fixed) > 0 {
		return fmt.Errorf("%s changed; these apply only at start: restart openqps, or put back the running values (nothing was reloaded)", strings.Join(fixed, ", "))
	}
	if err := s.Frontend.SetConfig(cfg); err != nil {
		return fmt.Errorf("front end: %w (nothing was reloaded)", err)
	}
	s.API.SetConfig(cfg)
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
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			changed = append(changed, f.key)
		}
	}
	return changed
}
