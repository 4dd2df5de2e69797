package session

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestPageListsEverySessionOnce walks a store page by page, with and
// without filters, and finds each matching session exactly once.
func TestPageListsEverySessionOnce(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	ctx := context.Background()
	now := time.Now()
	for i := 0; i < 1000; i++ {
		prefix := []string{"", "vp"}[i%2]
		s := Session{Prefix: prefix, ID: fmt.Sprintf("session-%04d-abcdefghijkl", i), UserDirectory: "ACME",
			UserID: fmt.Sprintf("user%d", i%10), Created: now, LastUsed: now, Timeout: time.Hour}
		if err := m.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		f    PageFilter
		want int
	}{
		{PageFilter{AnyPrefix: true}, 1000},
		{PageFilter{Prefix: "vp"}, 500},
		{PageFilter{AnyPrefix: true, UserID: "USER3"}, 100},
		{PageFilter{Prefix: "", UserDirectory: "acme", UserID: "user3"}, 0}, // user3 is in vp only
		{PageFilter{Prefix: "vp", UserDirectory: "other"}, 0},
	} {
		seen := map[string]bool{}
		cursor, pages := "", 0
		for {
			list, next, err := m.Page(ctx, tc.f, cursor, 33)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) > 33 {
				t.Fatalf("%+v: page of %d, limit 33", tc.f, len(list))
			}
			for _, s := range list {
				if seen[s.ID] {
					t.Fatalf("%+v: %s listed twice", tc.f, s.ID)
				}
				seen[s.ID] = true
			}
			pages++
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != tc.want {
			t.Errorf("%+v: %d sessions in %d pages, want %d", tc.f, len(seen), pages, tc.want)
		}
	}
	if _, _, err := m.Page(ctx, PageFilter{AnyPrefix: true}, "99999.1", 10); err == nil {
		t.Error("a cursor out of range was taken")
	}
}

// BenchmarkPageAt1M is one console page of 50 sessions out of a million,
// from the middle of the store, unfiltered and filtered by one user.
func BenchmarkPageAt1M(b *testing.B) {
	m := NewMemory()
	defer m.Close()
	ctx := context.Background()
	now := time.Now()
	for i := 0; i < 1_000_000; i++ {
		s := Session{Prefix: "vp", ID: fmt.Sprintf("%024d", i), UserDirectory: "ACME",
			UserID: fmt.Sprintf("user%d", i%1000), Created: now, LastUsed: now, Timeout: time.Hour}
		if err := m.Add(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	mid := fmt.Sprintf("%d.0", shardCount/2)
	for _, bc := range []struct {
		name string
		f    PageFilter
	}{
		{"all", PageFilter{Prefix: "vp"}},
		{"one-user", PageFilter{Prefix: "vp", UserDirectory: "acme", UserID: "user7"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				list, _, err := m.Page(ctx, bc.f, mid, 50)
				if err != nil || len(list) == 0 {
					b.Fatal(err, len(list))
				}
			}
		})
	}
}

// FuzzPageCursor: any cursor either is refused or starts a page, never
// panics the walk.
func FuzzPageCursor(f *testing.F) {
	m := NewMemory()
	defer m.Close()
	now := time.Now()
	m.Add(context.Background(), Session{Prefix: "vp", ID: "0123456789abcdef", UserDirectory: "D", UserID: "u", Created: now, LastUsed: now, Timeout: time.Hour})
	for _, c := range []string{"", "0.0", "255.99999", "-1.0", "1.", ".1", "99999999999999999999.0"} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		list, _, err := m.Page(context.Background(), PageFilter{AnyPrefix: true}, cursor, 10)
		if err == nil && len(list) > 1 {
			t.Fatalf("cursor %q: %d sessions of 1", cursor, len(list))
		}
	})
}
