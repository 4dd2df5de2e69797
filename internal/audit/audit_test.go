package audit

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestAuditEventsGoToTheAuditLogWhateverTheLogLevel(t *testing.T) {
	var process, auditLog bytes.Buffer
	counted := map[string]int{}
	h := NewHandler(slog.NewTextHandler(&process, &slog.HandlerOptions{Level: slog.LevelError}), &auditLog,
		func(e string) { counted[e]++ })
	log := slog.New(h)
	log.Info("ticket issued", "event", "ticket.issued", "ticket", "3f2a9c1d")
	log.Warn("back end failed", "event", "backend.error")
	log.With("event", "session.expired").Info("session expired", "vp", "sales")
	log.Info("plain message")
	log.Debug("debug event", "event", "session.added")
	h.AuditOnly().Info("api call", "event", "api.call", "caller", "CN=QlikClient")

	var events []string
	for _, line := range strings.Split(strings.TrimSpace(auditLog.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		events = append(events, rec["event"].(string))
	}
	if got := strings.Join(events, " "); got != "ticket.issued session.expired api.call" {
		t.Errorf("audit events %q", got)
	}
	if process.Len() != 0 {
		t.Errorf("the process log (level error) got %q", process.String())
	}
	if counted["backend.error"] != 1 || counted["ticket.issued"] != 1 || counted["api.call"] != 1 || counted["session.added"] != 0 {
		t.Errorf("counted %v", counted)
	}
}

func TestProcessLogKeepsEverythingItsLevelAllows(t *testing.T) {
	var process, auditLog bytes.Buffer
	log := slog.New(NewHandler(slog.NewTextHandler(&process, nil), &auditLog, nil))
	log.Info("ticket issued", "event", "ticket.issued")
	log.WithGroup("g").Info("plain", "k", "v")
	if !strings.Contains(process.String(), "event=ticket.issued") || !strings.Contains(process.String(), "g.k=v") {
		t.Errorf("process log %q", process.String())
	}
}
