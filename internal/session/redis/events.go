package redis

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/openqps/openqps/internal/session"
)

func netDialer(timeout time.Duration) net.Dialer {
	return net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
}

// subscribe listens on the events channel on a dedicated connection and
// hands every event to this node's watchers, reconnecting after a Redis
// outage until ctx ends. subscribed is closed once the first
// subscription is in place.
func (s *Store) subscribe(ctx context.Context, subscribed chan struct{}) {
	defer s.done.Done()
	var once sync.Once
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		c, release := s.client.Dedicate()
		broken := c.SetPubSubHooks(rueidis.PubSubHooks{
			OnMessage: func(m rueidis.PubSubMessage) {
				if ev, ok := decodeEvent(m.Message); ok {
					s.watch.Emit(ev)
				}
			},
			OnSubscription: func(ps rueidis.PubSubSubscription) {
				if ps.Kind == "subscribe" {
					once.Do(func() { close(subscribed) })
				}
			},
		})
		err := c.Do(ctx, c.B().Subscribe().Channel(s.keys.events()).Build()).Error()
		if err == nil {
			backoff = 50 * time.Millisecond
			select {
			case <-broken: // the connection failed: subscribe again
			case <-ctx.Done():
			}
		}
		release()
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Second)
		case <-ctx.Done():
		}
	}
}

// sweepEvery reports expired sessions until ctx ends.
func (s *Store) sweepEvery(ctx context.Context) {
	defer s.done.Done()
	tick := time.NewTicker(s.opts.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.sweep(ctx)
		}
	}
}

// sweepBatch bounds the expired entries one sweep handles per virtual proxy.
const sweepBatch = 1000

// sweep finds the sessions whose index entries have expired, removes the
// entries and announces each session as Expired. Every node sweeps; the
// one whose ZREM removes an entry announces it, so each expiry is
// announced once. Redis has already dropped the session itself (TTL).
// Errors are left for the next sweep.
func (s *Store) sweep(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*s.opts.Timeout)
	defer cancel()
	prefixes, err := s.client.Do(ctx, s.client.B().Smembers().Key(s.keys.vps()).Build()).AsStrSlice()
	if err != nil {
		return
	}
	now := strconv.FormatInt(s.opts.Now().UnixMilli(), 10)
	for _, prefix := range prefixes {
		members, err := s.client.Do(ctx, s.client.B().Zrange().Key(s.keys.vp(prefix)).Min("-inf").Max("("+now).
			Byscore().Limit(0, sweepBatch).Build()).AsStrSlice()
		if err != nil {
			return
		}
		for _, m := range members {
			s.sweepMember(ctx, prefix, m)
		}
	}
}

func (s *Store) sweepMember(ctx context.Context, prefix, member string) {
	f := strings.SplitN(member, "\x00", 3)
	if len(f) != 3 {
		s.client.Do(ctx, s.client.B().Zrem().Key(s.keys.vp(prefix)).Member(member).Build())
		return
	}
	sess := session.Session{Prefix: prefix, ID: f[0], UserDirectory: f[1], UserID: f[2]}
	exists, err := s.client.Do(ctx, s.client.B().Exists().Key(s.keys.session(prefix, sess.ID)).Build()).AsInt64()
	if err != nil || exists == 1 {
		return // still there: its entry is refreshed at its next written use
	}
	removed, err := s.client.Do(ctx, s.client.B().Zrem().Key(s.keys.vp(prefix)).Member(member).Build()).AsInt64()
	if err != nil || removed == 0 {
		return // another node got it
	}
	s.release(ctx)
	b := s.client.B()
	s.client.Do(ctx, b.Zrem().Key(s.keys.user(session.UserKey(prefix, sess.UserDirectory, sess.UserID))).Member(sess.ID).Build())
	s.client.Do(ctx, b.Publish().Channel(s.keys.events()).Message(encodeEvent(session.Expired, sess)).Build())
}
