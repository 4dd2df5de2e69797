package qliklog

import (
	"context"
	"errors"
	"log/slog"
	"net"
)

// row says how one event becomes a row: the log it goes to, QPS's
// Command and SecurityClass, and the Message when the record has no
// reason of its own.
type row struct {
	security      bool
	command       string
	securityClass string
	message       string
}

// events maps openqps's audit events to rows. An event that starts a
// session on the front end (a login, a redeemed ticket) gives a security
// row and the activity row "Start session", as in QPS.
var events = map[string][]row{
	"session.added":      {{command: "Start session", message: "Session added through the trusted API"}},
	"session.deleted":    {{command: "Stop session", message: "Session deleted through the trusted API"}},
	"session.expired":    {{command: "Stop session", message: "Session timed out"}},
	"session.logged_out": {{command: "Stop session", message: "User logged out"}},
	"user.logged_out":    {{command: "Logout user", message: "All sessions of the user ended through the trusted API"}},
	"auth.login": {{security: true, command: "Login", securityClass: "Authentication", message: "User authenticated"},
		{command: "Start session", message: "Session started after login"}},
	"auth.anonymous": {{security: true, command: "Login", securityClass: "Authentication", message: "Anonymous user"},
		{command: "Start session", message: "Anonymous session started"}},
	"ticket.issued": {{security: true, command: "Add ticket", securityClass: "Ticket", message: "Ticket issued"}},
	"ticket.redeemed": {{security: true, command: "Consume ticket", securityClass: "Ticket", message: "Ticket redeemed"},
		{command: "Start session", message: "Session started with a ticket"}},
	"ticket.rejected":          {{security: true, command: "Consume ticket", securityClass: "Ticket"}},
	"api.rejected":             {{security: true, command: "API request", securityClass: "Request"}},
	"frontend.rejected":        {{security: true, command: "Request", securityClass: "Request"}},
	"websocket.origin_refused": {{security: true, command: "Open connection", securityClass: "Request", message: "Websocket origin not allowed"}},
	"websocket.csrf_refused":   {{security: true, command: "Open connection", securityClass: "Request", message: "Websocket CSRF token missing or wrong"}},
}

// Handler returns a slog.Handler that writes the audit events among the
// records to the Qlik-format files, whatever the level of next, and
// passes every record on to next when next is enabled for its level.
func (l *Logs) Handler(next slog.Handler) slog.Handler { return &handler{next: next, logs: l} }

type handler struct {
	next    slog.Handler
	logs    *Logs
	attrs   []slog.Attr // from WithAttrs, outside any group
	grouped bool        // a WithGroup came: later attributes are not the events' own
}

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo || h.next.Enabled(ctx, level)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if r.Level >= slog.LevelInfo {
		err = h.write(r)
	}
	if h.next.Enabled(ctx, r.Level) {
		err = errors.Join(err, h.next.Handle(ctx, r))
	}
	return err
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	if !h.grouped {
		c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	}
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	c := *h
	c.next, c.grouped = h.next.WithGroup(name), true
	return &c
}

// write turns r into its rows, if r is an event that has any. Records
// that are not (most) cost one scan of their attributes.
func (h *handler) write(r slog.Record) error {
	if _, ok := events[h.event(r)]; !ok {
		return nil
	}
	a := map[string]string{}
	for _, at := range h.attrs {
		a[at.Key] = at.Value.String()
	}
	if !h.grouped {
		r.Attrs(func(at slog.Attr) bool {
			a[at.Key] = at.Value.String()
			return true
		})
	}
	var err error
	for _, rw := range events[a["event"]] {
		err = errors.Join(err, h.logs.writeRow(r, rw, a))
	}
	return err
}

// event is the record's "event" attribute.
func (h *handler) event(r slog.Record) string {
	var event string
	for _, at := range h.attrs {
		if at.Key == "event" {
			event = at.Value.String()
		}
	}
	if !h.grouped {
		r.Attrs(func(at slog.Attr) bool {
			if at.Key == "event" {
				event = at.Value.String()
				return false
			}
			return true
		})
	}
	return event
}

// writeRow fills the fields of one row from the record's attributes.
// ProxyPackageId and RequestSequenceId are "0" (QPS's value for commands
// not tied to one HTTP package: openqps numbers no packages), TargetHost
// is empty (these events reach no back end).
func (l *Logs) writeRow(r slog.Record, rw row, a map[string]string) error {
	result, text := "0", "Success"
	if s := a["status"]; s != "" && s != "200" && s != "201" && s != "204" {
		result, text = s, "Error"
	}
	message := rw.message
	for _, k := range []string{"reason", "error"} {
		if a[k] != "" {
			message, text = a[k], a[k]
			break
		}
	}
	if d := a["detail"]; d != "" {
		message += ": " + d
	}
	origin := "Frontend"
	if _, ok := a["caller"]; ok {
		origin = "TrustedApi"
	}
	objectID, objectName := "", ""
	if t := a["ticket"]; t != "" {
		objectID, objectName = l.hash(t), "Ticket"
	}
	id := newGUID()
	fields := []string{
		l.opts.ProductVersion,
		r.Time.Format(TimeFormat),
		l.opts.Hostname,
		id,
		"Command=" + rw.command + ";Result=" + result + ";ResultText=" + text,
		l.hash(a["session"]),
		"0",
		"0",
		a["user_directory"],
		a["user_id"],
		objectID,
		objectName,
	}
	if rw.security {
		fields = append(fields, rw.securityClass)
	}
	fields = append(fields, "Proxy", origin, a["path"])
	if rw.security {
		fields = append(fields, clientHost(a["remote"]))
	}
	fields = append(fields, rw.command, result, message, "", a["vp"], id)
	for i, f := range fields {
		fields[i] = clean(f)
	}
	if rw.security {
		return l.security.write(fields)
	}
	return l.activity.write(fields)
}

// clientHost is the address of remote without its port.
func clientHost(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}
