package e2e

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/qliklog"
	"github.com/openqps/openqps/internal/session"
)

// qlikRows parses a Qlik-format log back: each row a map from the
// header's field names to values.
func qlikRows(t *testing.T, path string, fields []string) []map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	var rows []map[string]string
	first := true
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if first {
			if strings.Join(cols, "\t") != strings.Join(fields, "\t") {
				t.Fatalf("%s: header %q", path, cols)
			}
			first = false
			continue
		}
		if len(cols) != len(fields) {
			t.Fatalf("%s: %d fields in %q", path, len(cols), sc.Text())
		}
		row := map[string]string{}
		for i, c := range cols {
			row[fields[i]] = c
		}
		rows = append(rows, row)
	}
	return rows
}

// TestQlikLogsRecordTheSeedWorkflowAndTickets runs the seed workflow, a
// ticket login and a refused ticket against a real openqps with log.qlik
// set, then reads the AuditActivity and AuditSecurity files back.
func TestQlikLogsRecordTheSeedWorkflowAndTickets(t *testing.T) {
	dir := t.TempDir()
	o := start(t, func(c *config.Config) { c.Log.Qlik = config.QlikLog{Dir: dir, Hostname: "PROXY1", MaxFileMB: 10} })
	ctx := context.Background()

	sid := "aa051074-13a1-4f2a-842b-a64aa4d21001"
	o.addSession(t, "sessionvp", "DOMAIN", "User1", sid)
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", sid)
	if resp, body := get(t, b, o.frontURL("/sessionvp/hub/")); resp.StatusCode != http.StatusOK || !strings.Contains(body, o.Backend.Token) {
		t.Fatalf("seed GET: %d %s", resp.StatusCode, body)
	}
	ticket := o.ticketFor(t, "", "User2")
	if resp, body := get(t, o.browser(t), o.frontURL("/hub/?qlikTicket="+ticket)); resp.StatusCode >= 400 {
		t.Fatalf("ticket GET: %d %s", resp.StatusCode, body)
	}
	// A used ticket is refused (the browser goes back to the login module).
	if resp, _ := get(t, o.browser(t), o.frontURL("/hub/?qlikTicket="+ticket)); resp.StatusCode != http.StatusFound {
		t.Fatalf("second use of the ticket: %d, want 302 to the login module", resp.StatusCode)
	}
	if _, err := o.API.DeleteSession(ctx, "sessionvp", sid); err != nil {
		t.Fatal(err)
	}
	shutdown, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := o.Shutdown(shutdown); err != nil { // flushes and closes the files
		t.Fatal(err)
	}

	act := qlikRows(t, filepath.Join(dir, "PROXY1_AuditActivity_Proxy.txt"), qliklog.ActivityFields)
	sec := qlikRows(t, filepath.Join(dir, "PROXY1_AuditSecurity_Proxy.txt"), qliklog.SecurityFields)
	var got []string
	for _, r := range act {
		got = append(got, r["Command"]+" "+r["VirtualProxy"]+" "+r["UserDirectory"]+`\`+r["UserId"]+" "+r["Result"])
	}
	want := []string{`Start session sessionvp DOMAIN\User1 0`, `Start session  DOMAIN\User2 0`, `Stop session sessionvp DOMAIN\User1 0`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("activity rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if act[0]["ProxySessionId"] != act[2]["ProxySessionId"] || act[0]["ProxySessionId"] == "0" {
		t.Errorf("one session, ProxySessionIds %q and %q", act[0]["ProxySessionId"], act[2]["ProxySessionId"])
	}
	got = nil
	for _, r := range sec {
		got = append(got, r["Command"]+" "+r["SecurityClass"]+" "+r["UserId"]+" "+r["Result"]+" "+r["ClientHostAddress"])
	}
	want = []string{"Add ticket Ticket User2 0 ", "Consume ticket Ticket User2 0 127.0.0.1", "Consume ticket Ticket  401 127.0.0.1"}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("security rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if sec[0]["ObjectId"] == "" || sec[0]["ObjectId"] != sec[1]["ObjectId"] || sec[1]["ObjectId"] != sec[2]["ObjectId"] {
		t.Errorf("one ticket, ObjectIds %q %q %q", sec[0]["ObjectId"], sec[1]["ObjectId"], sec[2]["ObjectId"])
	}
	if sec[1]["ProxySessionId"] != act[1]["ProxySessionId"] {
		t.Errorf("the ticket's session: security %q, activity %q", sec[1]["ProxySessionId"], act[1]["ProxySessionId"])
	}

	for _, name := range []string{"PROXY1_AuditActivity_Proxy.txt", "PROXY1_AuditSecurity_Proxy.txt"} {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		for _, secret := range []string{sid, ticket, session.Redact(sid), session.Redact(ticket)} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s holds %q", name, secret)
			}
		}
	}
}
