package proxy

import (
	"strconv"
	"testing"
)

func TestCredentialIndexClaimAndBound(t *testing.T) {
	var x credentialIndex
	k := newCredentialKey("vp", "header\x00alice")
	if _, ok := x.lookup(k); ok {
		t.Fatal("empty index found an entry")
	}
	x.remember(k, "vp", "s1")
	if id, ok := x.lookup(k); !ok || id != "s1" {
		t.Fatalf("lookup: %q %v", id, ok)
	}
	if _, ok := x.lookup(newCredentialKey("other", "header\x00alice")); ok {
		t.Error("the credential of another virtual proxy found the entry")
	}
	x.remember(k, "vp", "s2") // a new login with the same credential
	x.claim("vp", "s1")       // the old session's cookie: not the entry any more
	if id, _ := x.lookup(k); id != "s2" {
		t.Fatalf("after claiming a replaced session: %q, want s2", id)
	}
	x.claim("vp", "s2")
	if _, ok := x.lookup(k); ok || x.entries.Load() != 0 {
		t.Fatalf("a claimed session is still offered (%d entries)", x.entries.Load())
	}
	for i := range maxCredentialEntries + 1 {
		x.remember(newCredentialKey("vp", strconv.Itoa(i)), "vp", strconv.Itoa(i))
	}
	if n := len(x.byCredential); n > maxCredentialEntries || n != len(x.bySession) {
		t.Errorf("index holds %d entries (%d by session), bound %d", n, len(x.bySession), maxCredentialEntries)
	}
}
