package config

import (
	"fmt"
	"strings"
)

// ConsolePath is the path segment under which every virtual proxy named
// by the admin section serves the admin console: /<prefix>/openqps/.
const ConsolePath = "openqps"

// Admin names who may open the admin console. A user is an admin when
// listed in Users or when one of the session's attributes is Attribute.
// With neither set there is no console.
type Admin struct {
	// Users are DIRECTORY\user names, matched case-insensitively.
	Users []string `yaml:"users"`
	// Attribute is Name=Value, e.g. Group=OpenqpsAdmins: a session with
	// that attribute (name case-insensitive, value exact) is an admin's.
	Attribute string `yaml:"attribute"`
	// VirtualProxies are the prefixes that serve the console ("" is the
	// default virtual proxy); empty: every virtual proxy.
	VirtualProxies []string `yaml:"virtual_proxies"`
}

// Enabled reports whether the console is served at all.
func (a *Admin) Enabled() bool { return len(a.Users) > 0 || a.Attribute != "" }

// Serves reports whether the virtual proxy with the prefix serves the console.
func (a *Admin) Serves(prefix string) bool {
	if !a.Enabled() {
		return false
	}
	if len(a.VirtualProxies) == 0 {
		return true
	}
	for _, p := range a.VirtualProxies {
		if strings.EqualFold(p, prefix) {
			return true
		}
	}
	return false
}

// IsAdmin reports whether a user with these attributes (name, value
// pairs) is an admin.
func (a *Admin) IsAdmin(dir, user string, attrs func(yield func(name, value string) bool)) bool {
	for _, u := range a.Users {
		d, id, _ := strings.Cut(u, `\`)
		if strings.EqualFold(d, dir) && strings.EqualFold(id, user) {
			return true
		}
	}
	name, value, ok := strings.Cut(a.Attribute, "=")
	if !ok {
		return false
	}
	for n, v := range attrs {
		if strings.EqualFold(n, name) && v == value {
			return true
		}
	}
	return false
}

func (a *Admin) setDefaults() {
	for i, p := range a.VirtualProxies {
		a.VirtualProxies[i] = strings.ToLower(strings.Trim(p, "/"))
	}
}

// admin checks the console's users and virtual proxies.
func (v *validator) admin(c *Config) {
	a := &c.Admin
	for i, u := range a.Users {
		d, id, ok := strings.Cut(u, `\`)
		if !ok || strings.TrimSpace(d) == "" || strings.TrimSpace(id) == "" || strings.Contains(id, `\`) {
			v.fail(fmt.Sprintf("admin.users[%d]", i), fmt.Sprintf(`%q is not DIRECTORY\user (e.g. 'ACME\alice')`, u))
		}
	}
	if a.Attribute != "" {
		if n, _, ok := strings.Cut(a.Attribute, "="); !ok || strings.TrimSpace(n) == "" {
			v.fail("admin.attribute", fmt.Sprintf("%q is not Name=Value (e.g. Group=OpenqpsAdmins)", a.Attribute))
		}
	}
	for i, p := range a.VirtualProxies {
		if _, ok := c.VirtualProxy(p); !ok {
			v.fail(fmt.Sprintf("admin.virtual_proxies[%d]", i), fmt.Sprintf("no virtual proxy has the prefix %q", p))
		}
	}
	if len(a.VirtualProxies) > 0 && !a.Enabled() {
		v.fail("admin.virtual_proxies", "name the console's users too (admin.users or admin.attribute)")
	}
}
