package config

import (
	"strings"
	"testing"
)

func TestAdminSection(t *testing.T) {
	base := "virtual_proxies:\n  - {prefix: \"\", backends: [\"http://127.0.0.1:1\"]}\n  - {prefix: vp, backends: [\"http://127.0.0.1:1\"]}\n"
	for _, tc := range []struct{ yaml, err string }{
		{"admin: {users: ['ACME\\alice']}", ""},
		{"admin: {attribute: Group=OpenqpsAdmins, virtual_proxies: [vp, '']}", ""},
		{"admin: {users: ['alice']}", `admin.users[0]: "alice" is not DIRECTORY\user`},
		{"admin: {users: ['ACME\\a\\b']}", `is not DIRECTORY\user`},
		{"admin: {attribute: Group}", `admin.attribute: "Group" is not Name=Value`},
		{"admin: {attribute: '=x'}", `is not Name=Value`},
		{"admin: {users: ['ACME\\alice'], virtual_proxies: [nope]}", `no virtual proxy has the prefix "nope"`},
		{"admin: {virtual_proxies: [vp]}", "name the console's users too"},
	} {
		_, err := Parse([]byte(tc.yaml + "\n" + base))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.yaml, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.yaml, err, tc.err)
		}
	}
	a := Admin{Users: []string{`ACME\Alice`}, Attribute: "Group=Admins", VirtualProxies: []string{"vp"}}
	none := func(func(string, string) bool) {}
	group := func(v string) func(func(string, string) bool) {
		return func(yield func(string, string) bool) { yield("group", v) }
	}
	switch {
	case !a.IsAdmin("acme", "alice", none):
		t.Error("a listed user (other case) is no admin")
	case a.IsAdmin("ACME", "bob", none), a.IsAdmin("OTHER", "Alice", none):
		t.Error("an unlisted user is an admin")
	case !a.IsAdmin("X", "y", group("Admins")):
		t.Error("the attribute does not make an admin")
	case a.IsAdmin("X", "y", group("admins")):
		t.Error("the attribute value matched in another case")
	case !a.Serves("vp") || a.Serves(""):
		t.Error("Serves ignores virtual_proxies")
	case (&Admin{}).Serves(""):
		t.Error("an empty admin section serves the console")
	}
}
