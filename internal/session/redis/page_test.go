package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/redis"
	"github.com/openqps/openqps/internal/session/redis/redistest"
)

// TestPageWalksEveryIndex walks a real Redis page by page, across
// virtual proxies and with filters, and finds each matching live session
// once; sessions without a timeout are listed too.
func TestPageWalksEveryIndex(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.Addr, redis.Options{})
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	for i := 0; i < 300; i++ {
		timeout := time.Hour
		if i%7 == 0 {
			timeout = 0 // never times out: scored +inf in the index
		}
		sess := session.Session{Prefix: []string{"a", "b", ""}[i%3], ID: fmt.Sprintf("page-session-%04d-0123456789", i),
			UserDirectory: "ACME", UserID: fmt.Sprintf("user%d", i%10), Created: now, LastUsed: now, Timeout: timeout}
		if err := s.Add(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		f    session.PageFilter
		want int
	}{
		{session.PageFilter{AnyPrefix: true}, 300},
		{session.PageFilter{Prefix: "b"}, 100},
		{session.PageFilter{Prefix: ""}, 100},
		{session.PageFilter{AnyPrefix: true, UserDirectory: "acme", UserID: "USER4"}, 30},
		{session.PageFilter{Prefix: "a", UserID: "nobody"}, 0},
	} {
		seen := map[string]bool{}
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatalf("%+v: no end after 100 pages", tc.f)
			}
			list, next, err := s.Page(ctx, tc.f, cursor, 20)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range list {
				if seen[x.Prefix+"/"+x.ID] {
					t.Fatalf("%+v: %s listed twice", tc.f, x.ID)
				}
				seen[x.Prefix+"/"+x.ID] = true
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != tc.want {
			t.Errorf("%+v: %d sessions, want %d", tc.f, len(seen), tc.want)
		}
	}
	if _, _, err := s.Page(ctx, session.PageFilter{AnyPrefix: true}, "nope:1", 10); err == nil {
		t.Error("a cursor of no virtual proxy was taken")
	}
}
