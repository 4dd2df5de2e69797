package session_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/session"
)

var targetKey = bytes.Repeat([]byte{7}, session.SecretSize)

func TestTargetIDRoundTrips(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	for _, tg := range []session.Target{
		{Prefix: "sales", URI: "https://proxy.example/sales/sense/app/1?sheet=2&x=%20", Expires: now.Add(10 * time.Minute)},
		{Prefix: "", URI: "https://proxy.example/hub/", Expires: now.Add(time.Second)},
		{Prefix: "vp", URI: "https://proxy.example/vp/?q=" + strings.Repeat("é", (session.MaxTargetURI-40)/2), Expires: now.Add(time.Hour)},
	} {
		id, err := session.SealTarget(targetKey, tg)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("targetId %q is not URL-safe", id)
		}
		got, err := session.OpenTarget(targetKey, id, now)
		if err != nil || got != tg {
			t.Fatalf("OpenTarget = %+v, %v; want %+v", got, err, tg)
		}
	}
}

func TestTargetIDIsRefusedWhenNotOurs(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	tg := session.Target{Prefix: "sales", URI: "https://proxy.example/sales/hub/", Expires: now.Add(time.Minute)}
	id, err := session.SealTarget(targetKey, tg)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := bytes.Repeat([]byte{8}, session.SecretSize)
	otherID, _ := session.SealTarget(otherKey, tg)
	flipped := []byte(id)
	if flipped[len(flipped)/2] != 'A' { // another base64url character
		flipped[len(flipped)/2] = 'A'
	} else {
		flipped[len(flipped)/2] = 'B'
	}
	for name, bad := range map[string]string{
		"another key":      otherID,
		"one byte changed": string(flipped),
		"truncated":        id[:len(id)-4],
		"a GUID":           "f0a91ad7-b7a6-44a6-a8a8-313744dc7863",
		"empty":            "",
		"not base64":       id + "!",
		"a line break":     id[:10] + "\r\n" + id[10:],
		"too long":         strings.Repeat("A", 8<<10),
	} {
		if got, err := session.OpenTarget(targetKey, bad, now); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("%s: OpenTarget = %+v, %v; want ErrNotFound", name, got, err)
		}
	}
	if _, err := session.OpenTarget(targetKey, id, tg.Expires); !errors.Is(err, session.ErrNotFound) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("at its expiry: %v, want an ErrNotFound that says it expired", err)
	}
}

func TestTargetURIIsBounded(t *testing.T) {
	t.Parallel()
	uri := "https://proxy.example/?q=" + strings.Repeat("x", session.MaxTargetURI)
	if id, err := session.SealTarget(targetKey, session.Target{URI: uri, Expires: time.Now().Add(time.Minute)}); !errors.Is(err, session.ErrTargetTooLong) {
		t.Fatalf("SealTarget of %d bytes = %d bytes, %v; want ErrTargetTooLong", len(uri), len(id), err)
	}
}

// FuzzOpenTarget: a targetId comes from the login module, so from the
// network; opening any string must not panic, and only a sealed one opens.
func FuzzOpenTarget(f *testing.F) {
	now := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	id, _ := session.SealTarget(targetKey, session.Target{Prefix: "vp", URI: "https://x/vp/hub/", Expires: now.Add(time.Minute)})
	f.Add(id)
	f.Add("")
	f.Add("AQAAAAAAAAAA")
	f.Add("f0a91ad7-b7a6-44a6-a8a8-313744dc7863")
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := session.OpenTarget(targetKey, s, now)
		if err != nil {
			if !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("OpenTarget error %v does not wrap ErrNotFound", err)
			}
			return
		}
		again, err := session.SealTarget(targetKey, tg)
		if err != nil || again != s {
			t.Fatalf("opened %+v from %q, which seals to %q, %v", tg, s, again, err)
		}
	})
}
