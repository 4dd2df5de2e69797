package proxy

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestAnonymousCookieRoundTrip(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	c := anonymousCookie{signedAt: time.Unix(1_800_000_000, 0)}
	copy(c.random[:], "0123456789abcdef")
	v := signAnonymous(key, "anon", c)
	if len(v) != anonymousCookieLen {
		t.Fatalf("cookie %q is %d long, want %d", v, len(v), anonymousCookieLen)
	}
	got, ok := parseAnonymous(key, "anon", v)
	if !ok || got != c {
		t.Fatalf("parse: %+v %v, want %+v", got, ok, c)
	}
	for name, bad := range map[string]struct{ key, prefix, value string }{
		"other key":          {strings.Repeat("x", 32), "anon", v},
		"other prefix":       {string(key), "anon2", v},
		"truncated":          {string(key), "anon", v[:len(v)-1] + "."},
		"no dot":             {string(key), "anon", strings.Replace(v, ".", "A", 1)},
		"padding characters": {string(key), "anon", v[:len(v)-2] + "=="},
	} {
		if _, ok := parseAnonymous([]byte(bad.key), bad.prefix, bad.value); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	if u := c.userID(); !strings.HasPrefix(u, "anonymous") || len(u) != len("anonymous")+36 || strings.Contains(u, c.id()) {
		t.Errorf("user id %q", u)
	}
}

// FuzzAnonymousCookie feeds arbitrary cookie values to the anonymous
// cookie parser: no panic, and only a value signed with the key passes —
// the one signAnonymous writes for what it parsed.
func FuzzAnonymousCookie(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	c := anonymousCookie{signedAt: time.Unix(1_800_000_000, 0)}
	good := signAnonymous(key, "anon", c)
	f.Add(good)
	f.Add(good[:len(good)-1] + "B")
	f.Add(strings.Repeat("A", anonymousCookieLen))
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := parseAnonymous(key, "anon", v)
		if !ok {
			return
		}
		if again := signAnonymous(key, "anon", got); again != v {
			t.Fatalf("%q passed, but its signed form is %q", v, again)
		}
	})
}
