package qpsapi

import (
	"slices"
	"testing"

	"github.com/openqps/openqps/internal/session"
)

func TestParseRoute(t *testing.T) {
	cases := []struct {
		path        string
		prefix, res string
		args        []string
		wantErr     bool
	}{
		{path: "/qps/session", res: "session"},
		{path: "/qps/session/", res: "session"},
		{path: "/qps/sessionvp/session/abc", prefix: "sessionvp", res: "session", args: []string{"abc"}},
		{path: "/qps//ProxyX1/user/DOMAIN/User%201", prefix: "proxyx1", res: "user", args: []string{"DOMAIN", "User 1"}},
		{path: "/QPS/Ticket", res: "ticket"},
		{path: "/qps/vp/ticket", prefix: "vp", res: "ticket"},
		{path: "/qps/alive", res: "alive"},
		{path: "/qps/vp", wantErr: true},
		{path: "/qps/", wantErr: true},
		{path: "/other/session", wantErr: true},
		{path: "/qps/vp/nothing", wantErr: true},
		{path: "/qps/vp/../session", wantErr: true},
		{path: "/qps/vp/%2e%2e/session", wantErr: true},
		{path: "/qps/session/%zz", wantErr: true},
	}
	for _, c := range cases {
		rt, err := parseRoute(c.path)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: error %v, want error %v", c.path, err, c.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if rt.prefix != c.prefix || rt.resource != c.res || !slices.Equal(rt.args, c.args) {
			t.Errorf("%s: got %+v", c.path, rt)
		}
	}
}

func TestCheckSessionID(t *testing.T) {
	for id, ok := range map[string]bool{
		"aa051074-13a1-4f2a-842b-a64aa4d21001": true,
		"0123456789abcdef":                     true,
		"0123456789abcde":                      false,
		"0123456789abcdef;x":                   false,
		"0123456789abcdef x":                   false,
		"0123456789abcdef\"":                   false,
	} {
		if err := checkSessionID(id, 16); (err == nil) != ok {
			t.Errorf("%q: %v", id, err)
		}
	}
}

func TestRedactPathKeepsNamesAndHashesIDs(t *testing.T) {
	cfg := logTestConfig(t)
	const id = "aa051074-13a1-4f2a-842b-a64aa4d21001"
	h := "sha256:" + session.Redact(id)
	for path, want := range map[string]string{
		"/qps/sessionvp/session/" + id:        "/qps/sessionvp/session/" + h,
		"/qps/SESSION/" + id + "/":            "/qps/SESSION/" + h + "/",
		"/qps/session/abc":                    "/qps/session/sha256:" + session.Redact("abc"),
		"/qps/sessionvp/" + id:                "/qps/sessionvp/" + h,
		"/qps/sesion/" + id:                   "/qps/sesion/" + h,
		"/qps/" + id + "/session":             "/qps/" + h + "/session",
		"/qps/user/DOMAIN/User1":              "/qps/user/DOMAIN/User1",
		"/qps/user/DOMAIN/" + id:              "/qps/user/DOMAIN/" + h,
		"/qps/nosuchvp/ticket":                "/qps/nosuchvp/ticket",
		"/openqps/reload":                     "/openqps/reload",
		"/qps/sessionvp/session/" + id + "/x": "/qps/sessionvp/session/" + h + "/sha256:" + session.Redact("x"),
	} {
		if got := redactPath(path, cfg); got != want {
			t.Errorf("redactPath(%q) = %q, want %q", path, got, want)
		}
	}
}
