package qpsapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/openqps/openqps/internal/config"
)

// FuzzParseRoute: any escaped path either routes to a known resource with
// no dot segment among its arguments, or is refused with a reason.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/qps/session", "/qps/sales/session/abc", "/qps/user/DOMAIN/User%201", "//qps//ticket/",
		"/qps/%2e%2e/session", "/qps/alive", "/QPS/Sales/Ticket", "/qps/x/y/z", "/qps/session/%zz", "/qps/user/a%2Fb/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := parseRoute(path)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("refused without a reason")
			}
			return
		}
		if !resources[rt.resource] {
			t.Fatalf("%q routed to unknown resource %q", path, rt.resource)
		}
		if resources[rt.prefix] {
			t.Fatalf("%q: prefix %q is a resource name", path, rt.prefix)
		}
		for _, a := range rt.args {
			if a == "." || a == ".." || a == "" {
				t.Fatalf("%q: argument %q", path, a)
			}
		}
	})
}

// FuzzCheckXrfkey: a request passes only with one query key and one
// header, equal, 16 characters of [0-9A-Za-z].
func FuzzCheckXrfkey(f *testing.F) {
	f.Add("xrfkey=abcdefghijklmnop", "abcdefghijklmnop")
	f.Add("Xrfkey=abcdefghijklmnop&x=1", "abcdefghijklmnop")
	f.Add("xrfkey=abcdefghijklmnop&xrfkey=abcdefghijklmnop", "abcdefghijklmnop")
	f.Add("xrfkey=abc", "abc")
	f.Add("xrfkey=abcdefgh%26jklmnop", "abcdefgh&jklmnop")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, query, header string) {
		r := &http.Request{URL: &url.URL{Path: "/qps/session", RawQuery: query}, Header: http.Header{}}
		if header != "" {
			r.Header.Set(XrfkeyHeader, header)
		}
		if err := CheckXrfkey(r); err != nil {
			return
		}
		if len(header) != 16 || !strings.Contains(query, header) {
			t.Fatalf("query %q header %q passed", query, header)
		}
		for _, c := range []byte(header) {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				t.Fatalf("header %q passed", header)
			}
		}
	})
}

// FuzzUserRequest feeds arbitrary bodies to the session and ticket
// request decoder and the checks behind it: no panic, and whatever passes
// is a clean identity with a cookie-safe session id.
func FuzzUserRequest(f *testing.F) {
	for _, s := range []string{
		`{"UserDirectory":"DOMAIN","UserId":"User1","SessionId":"aa051074-13a1-4f2a-842b-a64aa4d21001"}`,
		`{"userdirectory":"D","userid":"u","Attributes":[{"Group":"A"},{"Group":"B"},{"n":1},{"b":true},{"z":null}]}`,
		`{"UserDirectory":"D\\X","UserId":"u"}`, `{"UserId":{"$ne":1}}`, `[[[[[]]]]]`, `{} {}`, `null`, `{"Attributes":{}}`,
		`{"UserDirectory":" D ","UserId":"u\u0000","SessionId":"a;b"}`, `{"Attributes":[{"a":[1]}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req UserRequest
		if err := decodeBody(strings.NewReader(body), &req); err != nil {
			return
		}
		dir, derr := cleanUser("UserDirectory", req.UserDirectory)
		user, uerr := cleanUser("UserId", req.UserId)
		if derr == nil && uerr == nil {
			for _, v := range []string{dir, user} {
				if v == "" || strings.ContainsAny(v, "\\\x00\r\n") || v != strings.TrimSpace(v) {
					t.Fatalf("unclean identity %q", v)
				}
			}
		}
		if checkAttributes(req.Attributes) == nil {
			for _, a := range req.Attributes {
				if strings.ContainsAny(a.Key+a.Value, "\x00\r\n") {
					t.Fatalf("attribute %q=%q passed", a.Key, a.Value)
				}
			}
		}
		if checkSessionID(req.SessionId, 16) == nil && strings.ContainsAny(req.SessionId, ";, \"=\r\n") {
			t.Fatalf("session id %q passed", req.SessionId)
		}
	})
}

// FuzzAttributes: whatever the attribute decoder accepts survives a round
// trip through the encoder unchanged, order and repeated keys included.
func FuzzAttributes(f *testing.F) {
	for _, s := range []string{`[{"Group":"A"},{"Group":"B"}]`, `[{"a":"1","b":"2"}]`, `null`, `[]`, `[{"n":1.50},{"t":false}]`,
		`[{"\u00e9":"\ud83d\ude00"}]`, `{"a":"b"}`, `[{"a":{}}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var a Attributes
		if err := json.Unmarshal([]byte(data), &a); err != nil {
			return
		}
		out, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var back Attributes
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%s re-encoded as %s, which does not decode: %v", data, out, err)
		}
		if len(a) == 0 && len(back) == 0 {
			return
		}
		for i := range a {
			if !utf8.ValidString(a[i].Key + a[i].Value) {
				return // invalid UTF-8 is replaced by the encoder
			}
		}
		if !reflect.DeepEqual(a, back) {
			t.Fatalf("%s: %v became %v", data, a, back)
		}
	})
}

// FuzzRedactPath: a value long enough to be a session id or a ticket,
// anywhere in an API path (well formed or mistyped), never survives
// redaction, unless it is a name the API knows.
func FuzzRedactPath(f *testing.F) {
	cfg := logTestConfig(f)
	f.Add("/qps/session/", "aa051074-13a1-4f2a-842b-a64aa4d21001")
	f.Add("/qps/sales/SESSION/", "x")
	f.Add("/qps/sessionvp/", "aa051074-13a1-4f2a-842b-a64aa4d21001")
	f.Add("/qps/sesion/", "aa051074-13a1-4f2a-842b-a64aa4d21001")
	f.Add("/qps/", "aa051074-13a1-4f2a-842b-a64aa4d21001")
	f.Add("/qps/user/DOMAIN/", "aa051074-13a1-4f2a-842b-a64aa4d21001")
	f.Fuzz(func(t *testing.T, head, id string) {
		lower := strings.ToLower(id)
		_, isPrefix := cfg.VirtualProxy(lower)
		if len(id) < cfg.Sessions.MinIDLength || strings.Contains(id, "/") || resources[lower] || isPrefix || strings.Contains(head, id) {
			return
		}
		if got := redactPath(head+id, cfg); strings.Contains(got, id) {
			t.Fatalf("redactPath(%q) = %q", head+id, got)
		}
	})
}

// logTestConfig is a configuration with the virtual proxies "" and
// sessionvp and the default minimum session id length.
func logTestConfig(tb testing.TB) *config.Config {
	tb.Helper()
	cfg, err := config.Parse([]byte(`
virtual_proxies:
  - prefix: ""
    authentication_module_redirect_uri: https://login.example.test/
    backends: ["http://127.0.0.1:9"]
  - prefix: sessionvp
    authentication_module_redirect_uri: https://login.example.test/
    backends: ["http://127.0.0.1:9"]
`))
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}
