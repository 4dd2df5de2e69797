package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/openqps/openqps/internal/audit"
	"github.com/openqps/openqps/internal/console"
	"github.com/openqps/openqps/internal/metrics"
	"github.com/openqps/openqps/internal/qliklog"
	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/version"
)

// openAudit routes the process log through the audit handler: audit
// events also go, as JSON lines, to audit.file (appended, mode 0600;
// "-" is standard output) or else to opts.AuditOut, if any. The
// per-call api.call records appear only there. It creates the metrics registry, which counts the
// events.
func (s *Server) openAudit(opts Options, log *slog.Logger) (*slog.Logger, error) {
	var prefixes []string
	for _, vp := range s.Config.VirtualProxies {
		prefixes = append(prefixes, vp.Prefix)
	}
	s.Metrics = metrics.New(prefixes)

	// The process log carries every audit event already: by default
	// there is one stream, readable in a terminal, and no event is
	// printed twice.
	out := opts.AuditOut
	switch f := s.Config.Audit.File; f {
	case "":
	case "-":
		out = os.Stdout
	default:
		file, err := os.OpenFile(f, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit.file: %w", err)
		}
		s.auditFile, out = file, file
	}
	// The console's events page shows the last events of this stream.
	s.recentEvents = console.NewRecent(1000)
	if out == nil {
		out = s.recentEvents
	} else {
		out = io.MultiWriter(out, s.recentEvents)
	}
	h := audit.NewHandler(log.Handler(), out, s.Metrics.Event)
	s.auditOnly = h.AuditOnly()
	if s.Config.Log.Qlik.Dir == "" {
		return slog.New(h), nil
	}
	logs, err := s.openQlikLogs()
	if err != nil {
		return nil, err
	}
	s.qlikLogs = logs
	return slog.New(logs.Handler(h)), nil
}

// openQlikLogs opens log.qlik's AuditActivity and AuditSecurity files.
// Their hashes are keyed by a salt kept in <data_dir>/qliklog.salt, so a
// session keeps its ProxySessionId across restarts and the files cannot
// be joined to the audit log's hashes without the data directory.
func (s *Server) openQlikLogs() (*qliklog.Logs, error) {
	q := s.Config.Log.Qlik
	host := q.Hostname
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("log.qlik.hostname: the host name is unknown (%w): set it", err)
		}
		host = h
	}
	salt, err := loadSalt(filepath.Join(s.Config.DataDir, "qliklog.salt"))
	if err != nil {
		return nil, fmt.Errorf("log.qlik: %w", err)
	}
	logs, err := qliklog.Open(qliklog.Options{Dir: q.Dir, Hostname: host, ProductVersion: version.Get().Version,
		Salt: salt, MaxFileBytes: int64(q.MaxFileMB) << 20})
	if err != nil {
		return nil, fmt.Errorf("log.qlik.dir: %w", err)
	}
	return logs, nil
}

// loadSalt reads the salt in path, creating it (32 random bytes, mode
// 0600) the first time.
func loadSalt(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) >= 16 {
		return b, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	salt := make([]byte, 32)
	rand.Read(salt)
	if err := os.WriteFile(path, salt, 0o600); err != nil {
		return nil, err
	}
	return salt, nil
}

// startTelemetry opens the metrics listener (metrics.listen: /metrics,
// /healthz, /readyz) and follows the store's events to log sessions that
// expire.
func (s *Server) startTelemetry(ctx context.Context) error {
	s.Metrics.Sessions = s.sessionCounts
	s.Metrics.Backends = s.Frontend.Backends
	s.Metrics.StoreProbe = s.storeProbe
	if addr := s.Config.Metrics.Listen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("metrics: listen on %s: %w", addr, err)
		}
		s.MetricsAddr = ln.Addr().String()
		s.serve(&http.Server{Handler: metrics.Handler(s.Metrics, s.ready)}, ln, "metrics")
		s.log.Info("metrics listening", "addr", "http://"+displayAddr(s.MetricsAddr)+"/metrics")
	}
	watchCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopWatch = cancel
	events := s.Store.Watch(watchCtx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for ev := range events {
			if ev.Kind == session.Expired {
				s.log.Info("session expired", "event", "session.expired", "vp", ev.Prefix,
					"user_directory", ev.UserDirectory, "user_id", ev.UserID, "session", session.Redact(ev.ID))
			}
		}
	}()
	return nil
}

// ready is /readyz: every listener serves and the store answers.
func (s *Server) ready(ctx context.Context) error {
	if s.listenerFailed.Load() {
		return errors.New("a listener failed; see the log")
	}
	_, err := s.storeProbe(ctx)
	return err
}

// storeProbe looks up a session that does not exist and times it.
func (s *Server) storeProbe(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	_, err := s.Store.Get(ctx, "", "readyz-probe")
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		return time.Since(start), fmt.Errorf("session store: %w", err)
	}
	return time.Since(start), nil
}

// sessionCounts counts live sessions per virtual proxy for /metrics.
func (s *Server) sessionCounts(ctx context.Context) (map[string]int, error) {
	counts := map[string]int{}
	for _, vp := range s.Config.VirtualProxies {
		if c, ok := s.Store.(session.Counter); ok {
			n, err := c.Count(ctx, vp.Prefix)
			if err != nil {
				return nil, err
			}
			counts[vp.Prefix] = n
			continue
		}
		list, err := s.Store.List(ctx, vp.Prefix)
		if err != nil {
			return nil, err
		}
		counts[vp.Prefix] = len(list)
	}
	return counts, nil
}
