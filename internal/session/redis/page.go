package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/openqps/openqps/internal/session"
)

var _ session.Pager = (*Store)(nil)

// pageScans bounds the ZSCAN calls of one page, so that a narrow filter
// still answers promptly (the next page goes on from there).
const pageScans = 64

// Page walks the virtual proxies' indexes with ZSCAN, whose cursor is
// Redis's own: a page costs the index entries it scans, never a read of
// a whole index. The index members carry the user, so a filter is matched
// before any session is read; the sessions of the page are then read in
// one round trip. The cursor is "<prefix>:<ZSCAN cursor>" (a prefix holds
// no colon). As with every SCAN, a page may hold a batch more than limit,
// and a session rehashed during the walk may be listed twice.
func (s *Store) Page(ctx context.Context, f session.PageFilter, cursor string, limit int) ([]session.Session, string, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	if limit <= 0 {
		limit = 50
	}
	prefixes := []string{f.Prefix}
	if f.AnyPrefix {
		all, err := s.client.Do(ctx, s.client.B().Smembers().Key(s.keys.vps()).Build()).AsStrSlice()
		if err != nil {
			return nil, "", s.unavailable("list virtual proxies", err)
		}
		slices.Sort(all)
		prefixes = all
	}
	vp, scan := 0, uint64(0)
	if cursor != "" {
		p, c, ok := strings.Cut(cursor, ":")
		n, err := strconv.ParseUint(c, 10, 64)
		vp = slices.Index(prefixes, p)
		if !ok || err != nil || vp < 0 {
			return nil, "", fmt.Errorf("page cursor %q is not one a page gave", cursor)
		}
		scan = n
	}
	now := s.opts.Now().UnixMilli()
	var prefixOf, ids []string
	for scans := 0; vp < len(prefixes); {
		e, err := s.client.Do(ctx, s.client.B().Zscan().Key(s.keys.vp(prefixes[vp])).Cursor(scan).Count(int64(limit)).Build()).AsScanEntry()
		if err != nil {
			return nil, "", s.unavailable("scan the virtual proxy index", err)
		}
		for i := 0; i+1 < len(e.Elements); i += 2 {
			id, rest, _ := strings.Cut(e.Elements[i], "\x00")
			dir, user, _ := strings.Cut(rest, "\x00")
			expires, _ := strconv.ParseFloat(e.Elements[i+1], 64)
			if expires > float64(now) && (f.UserDirectory == "" || strings.EqualFold(dir, f.UserDirectory)) &&
				(f.UserID == "" || strings.EqualFold(user, f.UserID)) {
				prefixOf, ids = append(prefixOf, prefixes[vp]), append(ids, id)
			}
		}
		scan = e.Cursor
		if scan == 0 {
			vp++
		}
		scans++
		if len(ids) >= limit || scans == pageScans {
			break
		}
	}
	next := ""
	if vp < len(prefixes) {
		next = prefixes[vp] + ":" + strconv.FormatUint(scan, 10)
	}
	cmds := make(rueidis.Commands, 0, len(ids))
	for i, id := range ids {
		cmds = append(cmds, s.client.B().Hmget().Key(s.keys.session(prefixOf[i], id)).Field(sessionFields...).Build())
	}
	var out []session.Session
	for i, r := range s.client.DoMulti(ctx, cmds...) {
		fields, err := r.ToArray()
		if err != nil {
			return nil, "", s.unavailable("read sessions", err)
		}
		sess, err := decodeSession(prefixOf[i], ids[i], fields)
		if errors.Is(err, session.ErrNotFound) {
			continue // ended since the index was scanned
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, sess)
	}
	return out, next, nil
}
