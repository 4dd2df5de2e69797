package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/openqps/openqps/internal/audit"
	"github.com/openqps/openqps/internal/metrics"
	"github.com/openqps/openqps/internal/session"
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
	if out == nil {
		out = io.Discard
	}
	h := audit.NewHandler(log.Handler(), out, s.Metrics.Event)
	s.auditOnly = h.AuditOnly()
	return slog.New(h), nil
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
