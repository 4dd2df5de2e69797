package qliklog

import (
	"bufio"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/session"
)

// clock is a settable time for the daily roll.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func open(t *testing.T, c *clock, maxBytes int64) (*Logs, *slog.Logger) {
	t.Helper()
	l, err := Open(Options{Dir: t.TempDir(), Hostname: "NODE1", ProductVersion: "v9.9.9", Salt: []byte("pepper"),
		MaxFileBytes: maxBytes, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, slog.New(l.Handler(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError})))
}

// parse reads a Qlik log back: the header's names, then each row as a
// map from field name to value.
func parse(t *testing.T, path string) (header []string, rows []map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := bufio.NewReader(f)
	for {
		line, err := rd.ReadString('\n')
		if err == io.EOF && line == "" {
			break
		}
		line = strings.TrimSuffix(line, "\n")
		if !strings.HasSuffix(line, "\r") {
			t.Fatalf("%s: line %q does not end in CRLF", path, line)
		}
		cols := strings.Split(strings.TrimSuffix(line, "\r"), "\t")
		if header == nil {
			header = cols
			continue
		}
		if len(cols) != len(header) {
			t.Fatalf("%s: row has %d fields, header %d: %q", path, len(cols), len(header), line)
		}
		row := map[string]string{}
		for i, c := range cols {
			row[header[i]] = c
		}
		rows = append(rows, row)
	}
	return header, rows
}

var guid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestEventsBecomeQlikRows(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 4, 10, 0, 0, 0, time.Local)}
	l, log := open(t, c, 0)
	sid, ticket := "aa051074-13a1-4f2a-842b-a64aa4d21001", "TICKETabcdefghijklmnop"
	log.Info("session added", "event", "session.added", "vp", "sessionvp", "user_directory", "DOMAIN", "user_id", "User1",
		"session", session.Redact(sid), "caller", "CN=client")
	log.Info("ticket issued", "event", "ticket.issued", "vp", "ticketvp", "user_directory", "DOMAIN", "user_id", "User2",
		"ticket", session.Redact(ticket), "caller", "CN=client")
	log.Info("ticket redeemed", "event", "ticket.redeemed", "vp", "ticketvp", "user_directory", "DOMAIN", "user_id", "User2",
		"ticket", session.Redact(ticket), "session", session.Redact("s2"), "remote", "10.1.2.3:5555")
	log.Warn("ticket refused", "event", "ticket.rejected", "vp", "ticketvp", "ticket", session.Redact("bad"),
		"status", 403, "reason", "ticket unknown or already used", "remote", "[::1]:443")
	log.Info("session deleted", "event", "session.deleted", "vp", "sessionvp", "user_directory", "DOMAIN", "user_id", "User1",
		"session", session.Redact(sid), "caller", "CN=client")
	log.Info("backend up", "event", "backend.up", "vp", "sessionvp") // operational: no row
	log.Info("no event")

	header, act := parse(t, l.ActivityPath())
	if strings.Join(header, "\t") != strings.Join(ActivityFields, "\t") {
		t.Fatalf("activity header %q", header)
	}
	if filepath.Base(l.ActivityPath()) != "NODE1_AuditActivity_Proxy.txt" || filepath.Base(l.SecurityPath()) != "NODE1_AuditSecurity_Proxy.txt" {
		t.Fatalf("file names %s, %s", l.ActivityPath(), l.SecurityPath())
	}
	want := []struct{ command, user, vp, origin string }{
		{"Start session", "User1", "sessionvp", "TrustedApi"},
		{"Start session", "User2", "ticketvp", "Frontend"},
		{"Stop session", "User1", "sessionvp", "TrustedApi"},
	}
	if len(act) != len(want) {
		t.Fatalf("activity rows %v, want %d", act, len(want))
	}
	for i, w := range want {
		r := act[i]
		if r["Sequence#"] != itoa(i+1) || r["Command"] != w.command || r["UserId"] != w.user || r["UserDirectory"] != "DOMAIN" ||
			r["VirtualProxy"] != w.vp || r["Origin"] != w.origin || r["Service"] != "Proxy" || r["Result"] != "0" ||
			r["ProductVersion"] != "v9.9.9" || r["Hostname"] != "NODE1" || r["ProxyPackageId"] != "0" ||
			r["Description"] != "Command="+w.command+";Result=0;ResultText=Success" {
			t.Errorf("activity row %d = %v, want %+v", i, r, w)
		}
		if !guid.MatchString(r["Id"]) || r["Id2"] != r["Id"] {
			t.Errorf("row %d: Id %q, Id2 %q", i, r["Id"], r["Id2"])
		}
		if _, err := time.Parse(TimeFormat, r["Timestamp"]); err != nil || len(r["Timestamp"]) != len("20110805T145657.000+0200") {
			t.Errorf("row %d: Timestamp %q: %v", i, r["Timestamp"], err)
		}
	}
	// One session, one ProxySessionId, and not the audit log's hash.
	if act[0]["ProxySessionId"] != act[2]["ProxySessionId"] || act[0]["ProxySessionId"] == act[1]["ProxySessionId"] ||
		len(act[0]["ProxySessionId"]) != 32 || act[0]["ProxySessionId"] == session.Redact(sid) {
		t.Errorf("ProxySessionIds %q %q %q", act[0]["ProxySessionId"], act[1]["ProxySessionId"], act[2]["ProxySessionId"])
	}

	header, sec := parse(t, l.SecurityPath())
	if strings.Join(header, "\t") != strings.Join(SecurityFields, "\t") {
		t.Fatalf("security header %q", header)
	}
	if len(sec) != 3 {
		t.Fatalf("security rows %v, want 3", sec)
	}
	if r := sec[0]; r["Command"] != "Add ticket" || r["SecurityClass"] != "Ticket" || r["ObjectName"] != "Ticket" ||
		r["ObjectId"] == "" || r["UserId"] != "User2" || r["Origin"] != "TrustedApi" || r["ProxySessionId"] != "0" {
		t.Errorf("ticket issued row %v", r)
	}
	if r := sec[1]; r["Command"] != "Consume ticket" || r["ObjectId"] != sec[0]["ObjectId"] || r["ClientHostAddress"] != "10.1.2.3" ||
		r["ProxySessionId"] != act[1]["ProxySessionId"] || r["Result"] != "0" {
		t.Errorf("ticket redeemed row %v", r)
	}
	if r := sec[2]; r["Result"] != "403" || r["Message"] != "ticket unknown or already used" || r["ClientHostAddress"] != "::1" ||
		r["Description"] != "Command=Consume ticket;Result=403;ResultText=ticket unknown or already used" || r["Sequence#"] != "3" {
		t.Errorf("ticket rejected row %v", r)
	}

	for _, p := range []string{l.ActivityPath(), l.SecurityPath()} {
		b, _ := os.ReadFile(p)
		for _, secret := range []string{sid, ticket, session.Redact(sid), session.Redact(ticket)} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s holds %q", p, secret)
			}
		}
	}
}

func TestFilesRollBySizeAndDaily(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 4, 23, 59, 0, 0, time.UTC)}
	l, log := open(t, c, 1024)
	added := func(n int) {
		for i := 0; i < n; i++ {
			log.Info("session added", "event", "session.added", "vp", "v", "user_directory", "D", "user_id", "U", "session", session.Redact(itoa(i)))
		}
	}
	added(10)                           // about 250 bytes a row: rolls before 1 KB
	c.Set(c.Now().Add(2 * time.Minute)) // the next day
	added(1)

	logs, _ := filepath.Glob(filepath.Join(filepath.Dir(l.ActivityPath()), "NODE1_AuditActivity_Proxy_*Z*.log"))
	if len(logs) < 3 {
		t.Fatalf("rolled files %v, want at least 3 (by size, then at midnight)", logs)
	}
	seq := 0
	for _, p := range append(logs, l.ActivityPath()) {
		if !regexp.MustCompile(`_Proxy(_\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\dZ(_\d+)?\.log|\.txt)$`).MatchString(p) {
			t.Errorf("file name %s", p)
		}
		st, _ := os.Stat(p)
		if st.Size() > 1024 {
			t.Errorf("%s: %d bytes, past the 1024 limit", p, st.Size())
		}
		_, rows := parse(t, p) // every file starts with the header
		for _, r := range rows {
			seq++
			if r["Sequence#"] != itoa(seq) {
				t.Errorf("%s: Sequence# %s, want %d (sequence continues across files)", p, r["Sequence#"], seq)
			}
		}
	}
	if seq != 11 {
		t.Fatalf("%d rows across the files, want 11", seq)
	}
	_, rows := parse(t, l.ActivityPath())
	if len(rows) != 1 {
		t.Fatalf("the new day's file holds %d rows, want 1", len(rows))
	}
}

func TestOpenRollsAFileLeftFromAnotherDay(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.Local)}
	dir := t.TempDir()
	old := filepath.Join(dir, "NODE1_AuditActivity_Proxy.txt")
	os.WriteFile(old, []byte(strings.Join(ActivityFields, "\t")+"\r\n"), 0o600)
	yesterday := c.Now().Add(-24 * time.Hour)
	os.Chtimes(old, yesterday, yesterday)
	l, err := Open(Options{Dir: dir, Hostname: "NODE1", Salt: []byte("s"), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if logs, _ := filepath.Glob(filepath.Join(dir, "NODE1_AuditActivity_Proxy_*Z.log")); len(logs) != 1 {
		t.Fatalf("rolled %v, want yesterday's file", logs)
	}
}

func TestValuesStayInTheirColumn(t *testing.T) {
	c := &clock{t: time.Now()}
	l, log := open(t, c, 0)
	log.Warn("api request rejected", "event", "api.rejected", "status", 400, "path", "/qps/x/session",
		"error", "bad\tbody\r\nInjected\trow", "detail", "line1\nline2", "caller", "CN=x", "remote", "127.0.0.1:1")
	_, rows := parse(t, l.SecurityPath())
	if len(rows) != 1 || rows[0]["Message"] != "bad body  Injected row: line1 line2" || rows[0]["Context"] != "/qps/x/session" {
		t.Fatalf("rows %v", rows)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestAttributesFromWithCountAndGroupsDoNot(t *testing.T) {
	c := &clock{t: time.Now()}
	l, log := open(t, c, 0)
	log.With("vp", "sales", "user_directory", "D").Info("session added", "event", "session.added", "user_id", "U")
	log.WithGroup("request").Info("not an event of ours", "event", "session.added", "user_id", "V")
	_, rows := parse(t, l.ActivityPath())
	if len(rows) != 1 || rows[0]["VirtualProxy"] != "sales" || rows[0]["UserDirectory"] != "D" || rows[0]["UserId"] != "U" {
		t.Fatalf("rows %v, want one for sales D\\U", rows)
	}
}
