package console

import (
	"context"
	"strings"
	"testing"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// TestConfigPageRedactsSecrets: no password, secret or URL password of
// the configuration reaches the configuration page.
func TestConfigPageRedactsSecrets(t *testing.T) {
	cfg, err := config.Parse([]byte(`
store: {type: redis, redis: {addresses: ["127.0.0.1:6379"], username: u, password: hunter2-redis}}
virtual_proxies:
  - {prefix: "", backends: ["http://user:hunter2-url@127.0.0.1:1"], authentication_module_redirect_uri: "https://u:hunter2-login@login.example/"}
`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := redactedYAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "hunter2") {
		t.Errorf("a secret reaches the configuration page:\n%s", text)
	}
	for _, want := range []string{"password: (redacted)", "127.0.0.1:6379", "username: u"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page lacks %q:\n%s", want, text)
		}
	}
}

// TestSealedHandle: a session handle opens to its session with the
// store's key only, and a changed byte is refused.
func TestSealedHandle(t *testing.T) {
	store := session.NewMemory()
	defer store.Close()
	c := New(Options{Store: store})
	ctx := context.Background()
	h, err := c.seal(ctx, "vp", "the-session-id-0123")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "the-session-id") {
		t.Fatal("the handle shows the id")
	}
	if p, id, err := c.unseal(ctx, h); err != nil || p != "vp" || id != "the-session-id-0123" {
		t.Fatalf("unseal: %q %q %v", p, id, err)
	}
	b := []byte(h)
	b[len(b)/2] ^= 1
	if _, _, err := c.unseal(ctx, string(b)); err == nil {
		t.Error("a changed handle was opened")
	}
	other := session.NewMemory()
	defer other.Close()
	if _, _, err := New(Options{Store: other}).unseal(ctx, h); err == nil {
		t.Error("a handle opened under another store's key")
	}
}

// FuzzUnseal: a posted session handle never panics the console, and only
// what seal made opens.
func FuzzUnseal(f *testing.F) {
	store := session.NewMemory()
	defer store.Close()
	c := New(Options{Store: store})
	h, _ := c.seal(context.Background(), "", "0123456789abcdef")
	f.Add(h)
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, handle string) {
		p, id, err := c.unseal(context.Background(), handle)
		if err == nil && handle != h && (p != "" || id != "0123456789abcdef") {
			t.Fatalf("a handle seal never made opened to %q %q", p, id)
		}
	})
}

// TestRecentKeepsTheLastEvents: the ring keeps the last n lines, newest
// first.
func TestRecentKeepsTheLastEvents(t *testing.T) {
	r := NewRecent(3)
	if got := r.newestFirst(); len(got) != 0 {
		t.Fatalf("empty ring: %q", got)
	}
	for _, l := range []string{"a\n", "b\n", "c\n", "d\n", "e\n"} {
		r.Write([]byte(l))
	}
	var got []string
	for _, l := range r.newestFirst() {
		got = append(got, string(l))
	}
	if strings.Join(got, ",") != "e,d,c" {
		t.Errorf("got %q, want e,d,c", got)
	}
}
