// Package audit writes openqps's audit log: one JSON line per security
// event (sessions added, deleted, expired and logged out; tickets issued,
// redeemed and rejected; authentication failures with their reason;
// refused requests; trusted API calls with the caller's certificate
// subject). The events are the structured log records the rest of openqps
// already writes with an "event" attribute; Handler picks them out of the
// log stream, so there is one place that says what happened, not two.
// Secrets never reach it: session ids and tickets are logged only as
// session.Redact hashes.
package audit

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

// Handler is a slog.Handler that passes every record on to the process
// log and also writes audit events, whatever the log level, as JSON lines
// to the audit log. Every event is counted through Count. It is safe for
// concurrent use.
type Handler struct {
	log   slog.Handler // the process log
	audit slog.Handler // JSON lines
	count func(event string)
	event string // the "event" attribute fixed by WithAttrs
}

// NewHandler returns a Handler writing the process log to log and audit
// events to out. count may be nil.
func NewHandler(log slog.Handler, out io.Writer, count func(event string)) *Handler {
	if count == nil {
		count = func(string) {}
	}
	return &Handler{log: log, audit: slog.NewJSONHandler(out, nil), count: count}
}

// IsAuditEvent reports whether an event belongs in the audit log; events
// about back ends and the store are operational and go to the process log
// only.
func IsAuditEvent(event string) bool {
	for _, p := range []string{"session.", "ticket.", "auth.", "user.", "api.", "frontend.rejected", "panic",
		"websocket.origin_refused", "websocket.csrf_refused", "console."} {
		if strings.HasPrefix(event, p) {
			return true
		}
	}
	return false
}

// Enabled accepts info and above for the audit log, and whatever the
// process log accepts.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo || h.log.Enabled(ctx, level)
}

// Handle writes r to the audit log when it is an audit event and to the
// process log when its level is enabled there.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	event := h.event
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "event" {
			event = a.Value.String()
			return false
		}
		return true
	})
	if event != "" {
		h.count(event)
		if r.Level >= slog.LevelInfo && IsAuditEvent(event) {
			h.audit.Handle(ctx, r)
		}
	}
	if h.log.Enabled(ctx, r.Level) {
		return h.log.Handle(ctx, r)
	}
	return nil
}

// WithAttrs returns a Handler whose records carry attrs in both logs.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.log, c.audit = h.log.WithAttrs(attrs), h.audit.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "event" {
			c.event = a.Value.String()
		}
	}
	return &c
}

// WithGroup returns a Handler that puts later attributes in group name.
func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	c.log, c.audit = h.log.WithGroup(name), h.audit.WithGroup(name)
	return &c
}

// AuditOnly returns a logger that writes audit events to the audit log
// (and counts them) without repeating them in the process log: for
// records such as api.call, one per trusted API request, that would
// drown the process log.
func (h *Handler) AuditOnly() *slog.Logger {
	c := *h
	c.log = discard{}
	return slog.New(&c)
}

type discard struct{}

func (discard) Enabled(context.Context, slog.Level) bool  { return false }
func (discard) Handle(context.Context, slog.Record) error { return nil }
func (d discard) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discard) WithGroup(string) slog.Handler           { return d }
