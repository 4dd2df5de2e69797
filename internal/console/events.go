package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// Recent keeps the last audit events, as the JSON lines the audit log
// gets, for the events page. The server adds it to the audit stream
// (io.MultiWriter); each Write is one record. It is safe for concurrent
// use.
type Recent struct {
	mu    sync.Mutex
	lines [][]byte
	next  int
	full  bool
}

// NewRecent keeps the last n events.
func NewRecent(n int) *Recent { return &Recent{lines: make([][]byte, n)} }

func (r *Recent) Write(p []byte) (int, error) {
	line := bytes.Clone(bytes.TrimSpace(p))
	r.mu.Lock()
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	r.full = r.full || r.next == 0
	r.mu.Unlock()
	return len(p), nil
}

// newestFirst returns the kept lines, the newest first.
func (r *Recent) newestFirst() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.lines)
	}
	out := make([][]byte, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.lines[(r.next-i+len(r.lines))%len(r.lines)])
	}
	return out
}

// eventKinds are the events page's tabs: which events each shows.
var eventKinds = []struct{ Value, Name string }{
	{"tickets", "Tickets"},
	{"failures", "Login failures and refusals"},
	{"all", "All audit events"},
}

func eventOfKind(kind, event string) bool {
	switch kind {
	case "tickets":
		return strings.HasPrefix(event, "ticket.")
	case "failures":
		return strings.HasSuffix(event, "rejected") || strings.HasSuffix(event, "refused") || event == "panic"
	}
	return event != "api.call" // one per trusted call: the audit file has them
}

type eventRow struct {
	Time, Event, VP, User, Detail string
	Failure                       bool
}

type eventsData struct {
	Kinds             []vpOption
	Rows              []eventRow
	Issued, Redeemed  int
	Rejected, Refused int
}

func (c *Console) events(k *call) {
	kind := k.r.URL.Query().Get("kind")
	if kind == "" {
		kind = "tickets"
	}
	d := eventsData{}
	for _, ek := range eventKinds {
		d.Kinds = append(d.Kinds, vpOption{ek.Value, ek.Name, ek.Value == kind})
	}
	if c.opts.Recent != nil {
		for _, line := range c.opts.Recent.newestFirst() {
			var e map[string]any
			if json.Unmarshal(line, &e) != nil {
				continue
			}
			ev := str(e["event"])
			switch {
			case ev == "ticket.issued":
				d.Issued++
			case ev == "ticket.redeemed":
				d.Redeemed++
			case ev == "ticket.rejected":
				d.Rejected++
			case strings.HasSuffix(ev, "rejected") || strings.HasSuffix(ev, "refused"):
				d.Refused++
			}
			if !eventOfKind(kind, ev) || len(d.Rows) >= 200 {
				continue
			}
			user := str(e["user"])
			if dir, id := str(e["user_directory"]), str(e["user_id"]); id != "" {
				user = dir + `\` + id
			}
			detail := strings.TrimSpace(strings.Join(nonEmpty(str(e["error"]), str(e["detail"]), str(e["msg"])), " · "))
			if remote := str(e["remote"]); remote != "" {
				detail += " · from " + remote
			}
			d.Rows = append(d.Rows, eventRow{Time: str(e["time"]), Event: ev, VP: vpName(str(e["vp"])), User: user, Detail: detail,
				Failure: strings.HasSuffix(ev, "rejected") || strings.HasSuffix(ev, "refused")})
		}
	}
	c.render(k, http.StatusOK, "events", "Events", d, "", false)
}

func str(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
