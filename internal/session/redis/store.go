// Package redis is the session store shared by several openqps nodes:
// sessions, the per-user and per-virtual-proxy indexes, tickets and
// secrets live in Redis (standalone, Sentinel or Cluster), so any node
// serves any session.
//
// Lookups use Redis's server-assisted client-side cache (rueidis): a
// session read once is served from the node's memory until Redis says it
// changed, so the request path rarely waits on the network, and a delete
// through any node reaches every node's cache within milliseconds. Ended
// sessions are also announced on a Pub/Sub channel, which feeds Watch.
//
// Expiry rides on Redis TTLs. Last use is written coarsely: when a
// session's stored LastUsed is older than its granularity (a tenth of its
// timeout, at most Options.UseGranularity); so a session ends between its
// timeout and timeout plus that granularity after its last use.
//
// When Redis cannot be reached, every method returns an error wrapping
// session.ErrUnavailable promptly (Options.Timeout), and the store
// recovers by itself when Redis returns.
//
// The cache is only as fresh as the invalidations Redis sends on the
// connection it was filled on. A Redis that hangs, or a network that
// drops packets without closing the connection, stops them silently, and
// the node would keep serving sessions that other nodes have deleted. So
// the store pings every node several times per Timeout on that very
// connection (one per node: a PING's answer comes after every
// invalidation sent before it), and trusts the cache only while Redis
// answered within half the Timeout; after that a lookup goes to Redis and
// waits at most until Timeout has passed since Redis's last answer.
package redis

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/openqps/openqps/internal/session"
)

// Options configure a Store.
type Options struct {
	// Addresses are host:port pairs: one for a standalone server, several
	// for a cluster, or the sentinels when SentinelMaster is set.
	Addresses      []string
	SentinelMaster string
	Username       string
	Password       string
	// TLS, when not nil, is used to connect.
	TLS *tls.Config
	// KeyPrefix starts every key the store writes, e.g. "openqps:".
	KeyPrefix string
	// Timeout bounds each call to Redis; 0 is 2 seconds. It also bounds
	// how long a node that stops hearing from Redis trusts its cache
	// (half of it) and answers lookups at all (all of it); see the package
	// documentation.
	Timeout time.Duration
	// UseGranularity bounds how stale a stored LastUsed may get; 0 is 5 s.
	UseGranularity time.Duration
	// SweepInterval is how often this node looks for expired sessions to
	// report to watchers; 0 is session.DefaultSweepInterval.
	SweepInterval time.Duration
	// MaxSessions caps the sessions of all nodes together (the count is
	// kept in Redis); 0 is no cap.
	MaxSessions int
	// Now is the clock for times the store records; nil is time.Now.
	// Expiry itself is decided by Redis's clock.
	Now func() time.Time
}

// Store is the Redis store. All methods are safe for concurrent use.
type Store struct {
	client  rueidis.Client
	keys    keys
	opts    Options
	watch   session.Watchers
	cancel  context.CancelFunc // ends the subscriber, the sweeper and the heartbeat
	done    sync.WaitGroup
	closing sync.Once
	secrets sync.Map // name → []byte, read from Redis once

	// epoch is when Open started; answered is when, as time since epoch
	// (monotonic), the latest heartbeat was sent that every node
	// answered.
	epoch    time.Time
	answered atomic.Int64
}

var _ session.Store = (*Store)(nil)

// cacheTTL bounds how long a node keeps a session in its client-side
// cache; Redis invalidates it sooner when it changes.
const cacheTTL = time.Minute

// Open connects to Redis and starts listening for session events. It
// fails when Redis cannot be reached, naming the addresses.
func Open(o Options) (*Store, error) {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.UseGranularity <= 0 {
		o.UseGranularity = 5 * time.Second
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = session.DefaultSweepInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	co := rueidis.ClientOption{
		InitAddress:      o.Addresses,
		Username:         o.Username,
		Password:         o.Password,
		TLSConfig:        o.TLS,
		ClientName:       "openqps",
		ConnWriteTimeout: o.Timeout,
		Dialer:           netDialer(o.Timeout),
		// One pipelining connection per node (2^0), as rueidis has for a
		// cluster anyway: the heartbeat then travels on the connection
		// whose invalidations keep the cache fresh.
		PipelineMultiplex: -1,
	}
	if o.SentinelMaster != "" {
		co.Sentinel = rueidis.SentinelOption{MasterSet: o.SentinelMaster, Username: o.Username, Password: o.Password, TLSConfig: o.TLS}
	}
	client, err := rueidis.NewClient(co)
	if err != nil {
		return nil, fmt.Errorf("session store: cannot reach redis at %s: %w", strings.Join(o.Addresses, ", "), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{client: client, keys: keys{o.KeyPrefix}, opts: o, cancel: cancel, epoch: time.Now()}
	subscribed := make(chan struct{})
	s.done.Add(3)
	go s.subscribe(ctx, subscribed)
	go s.sweepEvery(ctx)
	go s.heartbeat(ctx)
	// Watch must see events from the moment Open returns.
	select {
	case <-subscribed:
	case <-time.After(o.Timeout):
		s.Close()
		return nil, fmt.Errorf("session store: redis at %s did not accept a subscription within %s", strings.Join(o.Addresses, ", "), o.Timeout)
	}
	return s, nil
}

// keys names the store's keys. Sessions are hashes; the indexes are
// sorted sets scored by the time (unix ms) their entry expires.
type keys struct{ prefix string }

func (k keys) session(prefix, id string) string { return k.prefix + "s:" + prefix + "\x00" + id }
func (k keys) user(userKey string) string       { return k.prefix + "u:" + userKey }
func (k keys) vp(prefix string) string          { return k.prefix + "p:" + prefix }
func (k keys) vps() string                      { return k.prefix + "vps" }
func (k keys) count() string                    { return k.prefix + "count" }
func (k keys) ticket(id string) string          { return k.prefix + "t:" + id }
func (k keys) events() string                   { return k.prefix + "events" }
func (k keys) secret(name string) string        { return k.prefix + "secret:" + name }

// vpMember is a session's member in its virtual proxy's index: the id,
// directory and user, so that an expired session's user is known.
func vpMember(s session.Session) string {
	return s.ID + "\x00" + s.UserDirectory + "\x00" + s.UserID
}

// granularity is how stale a session's stored LastUsed may get.
func (s *Store) granularity(timeout time.Duration) time.Duration {
	return max(min(s.opts.UseGranularity, timeout/10), time.Millisecond)
}

// ttl is how long Redis keeps a session after its last written use.
func (s *Store) ttl(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return 0
	}
	return timeout + s.granularity(timeout)
}

// deadline is the index score of a session last used at lastUsed.
func (s *Store) deadline(sess session.Session) float64 {
	if sess.Timeout <= 0 {
		return math.Inf(1)
	}
	return float64(sess.LastUsed.Add(s.ttl(sess.Timeout)).UnixMilli())
}

// unavailable wraps a Redis error. A cancellation stays what it is (the
// caller went away); a timeout means Redis did not answer in time.
func (s *Store) unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("redis %s: %v: %w", op, err, session.ErrUnavailable)
}

func (s *Store) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.Timeout)
}

// heartbeatsPerTimeout is how many heartbeats a Timeout holds: enough that
// one missed beat is no doubt yet, and Redis's last answer is never more
// than a fraction of the Timeout old while it is healthy.
const heartbeatsPerTimeout = 8

// heartbeat pings every node until ctx ends and records when the latest
// round that all of them answered was sent. The cache rides on what it
// records (see cacheTrusted), not on rueidis noticing a dead connection,
// which for a silent one takes its keepalive interval plus a timeout.
func (s *Store) heartbeat(ctx context.Context) {
	defer s.done.Done()
	tick := time.NewTicker(max(s.opts.Timeout/heartbeatsPerTimeout, 10*time.Millisecond))
	defer tick.Stop()
	for {
		sent := time.Since(s.epoch)
		if s.pingNodes(ctx) == nil {
			s.answered.Store(int64(sent))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pingNodes sends PING to every node at once and returns the first error.
func (s *Store) pingNodes(ctx context.Context) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	nodes := s.client.Nodes()
	errs := make(chan error, len(nodes))
	for _, node := range nodes {
		go func() { errs <- node.Do(ctx, node.B().Ping().Build()).Error() }()
	}
	var first error
	for range nodes {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// silence is how long ago the latest heartbeat that Redis answered was
// sent.
func (s *Store) silence() time.Duration {
	return time.Since(s.epoch) - time.Duration(s.answered.Load())
}

// lookupTimeout bounds a lookup: Redis gets Timeout from its last answer,
// so that a node cut off from it answers ErrUnavailable within Timeout of
// the cut, not a Timeout after it stopped trusting its cache. The floor
// keeps a lookup possible when only the heartbeat was slow.
func (s *Store) lookupTimeout(ctx context.Context, silence time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(s.opts.Timeout-silence, s.opts.Timeout/4))
}

// cacheTrusted reports whether a cached session may be served: only while
// Redis answered a heartbeat within half the Timeout. Beyond that, the
// invalidations the cache relies on may be stuck with the connection.
func cacheTrusted(silence, timeout time.Duration) bool { return silence < timeout/2 }

// sessionFields are the fields of a session hash in the order Get,
// List and the delete script read them (HMGET).
var sessionFields = []string{fDirectory, fUser, fAttributes, fCreated, fLastUsed, fTimeout}

// Fields of a session hash.
const (
	fDirectory  = "d"
	fUser       = "u"
	fAttributes = "a"
	fCreated    = "c" // unix ms
	fLastUsed   = "l" // unix ms
	fTimeout    = "t" // ms
)

var addScript = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'u', ARGV[2], 'a', ARGV[3], 'c', ARGV[4], 'l', ARGV[5], 't', ARGV[6])
if tonumber(ARGV[7]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[7]) end
return 1`)

// Add stores the session unless a live one has its prefix and id.
func (s *Store) Add(ctx context.Context, sess session.Session) error {
	now := s.opts.Now()
	if sess.Created.IsZero() {
		sess.Created = now
	}
	if sess.LastUsed.IsZero() {
		sess.LastUsed = now
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	if s.opts.MaxSessions > 0 {
		if err := s.reserve(ctx); err != nil {
			return err
		}
	}
	res := addScript.Exec(ctx, s.client, []string{s.keys.session(sess.Prefix, sess.ID)}, []string{
		sess.UserDirectory, sess.UserID, encodeAttributes(sess.Attributes),
		strconv.FormatInt(sess.Created.UnixMilli(), 10), strconv.FormatInt(sess.LastUsed.UnixMilli(), 10),
		strconv.FormatInt(sess.Timeout.Milliseconds(), 10), strconv.FormatInt(s.ttl(sess.Timeout).Milliseconds(), 10),
	})
	added, err := res.AsInt64()
	if err != nil {
		s.release(ctx)
		return s.unavailable("add session", err)
	}
	if added == 0 {
		s.release(ctx)
		return fmt.Errorf("add session %s in virtual proxy %q: %w", session.Redact(sess.ID), sess.Prefix, session.ErrExists)
	}
	if err := s.index(ctx, sess, now); err != nil {
		// Stored but not indexed: take the session back, so that the
		// caller's retry of the 503 with the same SessionId is not
		// refused as existing (best effort: Redis is failing).
		s.client.Do(ctx, s.client.B().Del().Key(s.keys.session(sess.Prefix, sess.ID)).Build())
		s.release(ctx)
		return s.unavailable("index session", err)
	}
	return nil
}

// index adds a stored session to its user's and its virtual proxy's
// indexes. The commands are idempotent, so a failure (typically a
// connection that broke while Redis restarted) is retried once, on a
// fresh connection.
func (s *Store) index(ctx context.Context, sess session.Session, now time.Time) error {
	score := s.deadline(sess)
	now64 := strconv.FormatInt(now.UnixMilli(), 10)
	userKey := s.keys.user(session.UserKey(sess.Prefix, sess.UserDirectory, sess.UserID))
	b := s.client.B()
	cmds := rueidis.Commands{
		b.Zadd().Key(userKey).ScoreMember().ScoreMember(score, sess.ID).Build(),
		b.Zadd().Key(s.keys.vp(sess.Prefix)).ScoreMember().ScoreMember(score, vpMember(sess)).Build(),
		b.Sadd().Key(s.keys.vps()).Member(sess.Prefix).Build(),
		// Keep the user index from growing with sessions that expired.
		b.Zremrangebyscore().Key(userKey).Min("-inf").Max("(" + now64).Build(),
	}
	for _, c := range cmds {
		c.Pin() // sent twice on a retry
	}
	var err error
	for range 2 {
		if err = firstError(s.client.DoMulti(ctx, cmds...)); err == nil {
			return nil
		}
	}
	return err
}

func firstError(rs []rueidis.RedisResult) error {
	for _, r := range rs {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}

// reserve counts one more session in Redis, unless that passes the cap.
// The count is approximate across crashes; expired sessions give their
// place back when the sweeper of any node reports them.
func (s *Store) reserve(ctx context.Context) error {
	n, err := s.client.Do(ctx, s.client.B().Incr().Key(s.keys.count()).Build()).AsInt64()
	if err != nil {
		return s.unavailable("count sessions", err)
	}
	if n > int64(s.opts.MaxSessions) {
		s.release(ctx)
		return fmt.Errorf("add session: %w (%d sessions, the configured maximum)", session.ErrFull, s.opts.MaxSessions)
	}
	return nil
}

func (s *Store) release(ctx context.Context) {
	if s.opts.MaxSessions > 0 {
		s.client.Do(ctx, s.client.B().Decr().Key(s.keys.count()).Build())
	}
}

// Get returns the live session. It is served from the client-side cache
// when the session was read before and has not changed since. A cached
// "absent" is checked again in Redis, so that a session added through
// another node a moment ago is found.
func (s *Store) Get(ctx context.Context, prefix, id string) (session.Session, error) {
	silence := s.silence()
	ctx, cancel := s.lookupTimeout(ctx, silence)
	defer cancel()
	key := s.keys.session(prefix, id)
	var fields []rueidis.RedisMessage
	var err error
	if cacheTrusted(silence, s.opts.Timeout) {
		res := s.client.DoCache(ctx, s.client.B().Hmget().Key(key).Field(sessionFields...).Cache(), cacheTTL)
		fields, err = res.ToArray()
		if err == nil && absent(fields) && res.IsCacheHit() {
			fields, err = s.client.Do(ctx, s.client.B().Hmget().Key(key).Field(sessionFields...).Build()).ToArray()
		}
	} else {
		fields, err = s.client.Do(ctx, s.client.B().Hmget().Key(key).Field(sessionFields...).Build()).ToArray()
	}
	if err != nil {
		return session.Session{}, s.unavailable("get session", err)
	}
	return decodeSession(prefix, id, fields)
}

var touchScript = rueidis.NewLuaScript(`
local l = redis.call('HGET', KEYS[1], 'l')
if not l then return 0 end
if tonumber(ARGV[1]) > tonumber(l) then redis.call('HSET', KEYS[1], 'l', ARGV[1]) end
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`)

// Touch slides the session's timeout. It writes to Redis only when the
// stored LastUsed is older than the session's granularity; otherwise it
// reads the (cached) session and returns.
func (s *Store) Touch(ctx context.Context, prefix, id string, at time.Time) error {
	sess, err := s.Get(ctx, prefix, id)
	if err != nil {
		return err
	}
	if sess.Timeout <= 0 || at.Sub(sess.LastUsed) < s.granularity(sess.Timeout) {
		return nil
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	key := s.keys.session(prefix, id)
	ok, err := touchScript.Exec(ctx, s.client, []string{key}, []string{
		strconv.FormatInt(at.UnixMilli(), 10), strconv.FormatInt(s.ttl(sess.Timeout).Milliseconds(), 10),
	}).AsInt64()
	if err != nil {
		return s.unavailable("touch session", err)
	}
	if ok == 0 {
		return session.ErrNotFound
	}
	sess.LastUsed = at
	score := s.deadline(sess)
	b := s.client.B()
	for _, r := range s.client.DoMulti(ctx,
		b.Zadd().Key(s.keys.user(session.UserKey(prefix, sess.UserDirectory, sess.UserID))).Xx().Gt().ScoreMember().ScoreMember(score, id).Build(),
		b.Zadd().Key(s.keys.vp(prefix)).Xx().Gt().ScoreMember().ScoreMember(score, vpMember(sess)).Build(),
	) {
		if err := r.Error(); err != nil {
			return s.unavailable("index session", err)
		}
	}
	return nil
}

var deleteScript = rueidis.NewLuaScript(`
local v = redis.call('HMGET', KEYS[1], 'd', 'u', 'a', 'c', 'l', 't')
if v[5] then redis.call('DEL', KEYS[1]) end
return v`)

// Delete removes the session and announces it to every node.
func (s *Store) Delete(ctx context.Context, prefix, id string) (session.Session, error) {
	return s.remove(ctx, prefix, id, session.Deleted, "")
}

// remove deletes the session atomically (of concurrent removals one
// wins), unindexes it and publishes the event. A non-empty userKey must
// match the session's.
func (s *Store) remove(ctx context.Context, prefix, id string, kind session.EventKind, userKey string) (session.Session, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	key := s.keys.session(prefix, id)
	if userKey != "" {
		// The id may have been reused by another user's session since
		// the index was read.
		sess, err := s.Get(ctx, prefix, id)
		if err != nil {
			return session.Session{}, err
		}
		if session.UserKey(prefix, sess.UserDirectory, sess.UserID) != userKey {
			return session.Session{}, session.ErrNotFound
		}
	}
	fields, err := deleteScript.Exec(ctx, s.client, []string{key}, nil).ToArray()
	if err != nil {
		return session.Session{}, s.unavailable("delete session", err)
	}
	sess, err := decodeSession(prefix, id, fields)
	if err != nil {
		return session.Session{}, err
	}
	s.release(ctx)
	b := s.client.B()
	for _, r := range s.client.DoMulti(ctx,
		b.Zrem().Key(s.keys.user(session.UserKey(prefix, sess.UserDirectory, sess.UserID))).Member(id).Build(),
		b.Zrem().Key(s.keys.vp(prefix)).Member(vpMember(sess)).Build(),
	) {
		if err := r.Error(); err != nil {
			return session.Session{}, s.unavailable("unindex session", err)
		}
	}
	// PUBLISH has no key: a cluster client sends it on its own.
	if err := s.client.Do(ctx, b.Publish().Channel(s.keys.events()).Message(encodeEvent(kind, sess)).Build()).Error(); err != nil {
		return session.Session{}, s.unavailable("announce session end", err)
	}
	return sess, nil
}

// ByUser returns the user's live sessions in the virtual proxy, oldest first.
func (s *Store) ByUser(ctx context.Context, prefix, directory, userID string) ([]session.Session, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	ids, err := s.userIDs(ctx, prefix, directory, userID)
	if err != nil {
		return nil, err
	}
	uk := session.UserKey(prefix, directory, userID)
	out := []session.Session{}
	for _, id := range ids {
		sess, err := s.Get(ctx, prefix, id)
		if errors.Is(err, session.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if session.UserKey(prefix, sess.UserDirectory, sess.UserID) == uk {
			out = append(out, sess)
		}
	}
	sortSessions(out)
	return out, nil
}

// userIDs returns the ids in the user's index whose entries have not expired.
func (s *Store) userIDs(ctx context.Context, prefix, directory, userID string) ([]string, error) {
	now := strconv.FormatInt(s.opts.Now().UnixMilli(), 10)
	ids, err := s.client.Do(ctx, s.client.B().Zrange().Key(s.keys.user(session.UserKey(prefix, directory, userID))).
		Min("("+now).Max("+inf").Byscore().Build()).AsStrSlice()
	if err != nil {
		return nil, s.unavailable("read user index", err)
	}
	return ids, nil
}

// DeleteUser removes every live session of the user in the virtual
// proxy, announcing each as LoggedOut.
func (s *Store) DeleteUser(ctx context.Context, prefix, directory, userID string) ([]session.Session, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	ids, err := s.userIDs(ctx, prefix, directory, userID)
	if err != nil {
		return nil, err
	}
	uk := session.UserKey(prefix, directory, userID)
	out := []session.Session{}
	for _, id := range ids {
		sess, err := s.remove(ctx, prefix, id, session.LoggedOut, uk)
		if errors.Is(err, session.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sess)
	}
	sortSessions(out)
	return out, nil
}

// List returns every live session of the virtual proxy, oldest first.
// It reads them all from Redis: it is meant for the API.
func (s *Store) List(ctx context.Context, prefix string) ([]session.Session, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	now := strconv.FormatInt(s.opts.Now().UnixMilli(), 10)
	members, err := s.client.Do(ctx, s.client.B().Zrange().Key(s.keys.vp(prefix)).
		Min("("+now).Max("+inf").Byscore().Build()).AsStrSlice()
	if err != nil {
		return nil, s.unavailable("read virtual proxy index", err)
	}
	cmds := make(rueidis.Commands, 0, len(members))
	ids := make([]string, 0, len(members))
	for _, m := range members {
		id, _, _ := strings.Cut(m, "\x00")
		ids = append(ids, id)
		cmds = append(cmds, s.client.B().Hmget().Key(s.keys.session(prefix, id)).Field(sessionFields...).Build())
	}
	out := []session.Session{}
	for i, r := range s.client.DoMulti(ctx, cmds...) {
		fields, err := r.ToArray()
		if err != nil {
			return nil, s.unavailable("list sessions", err)
		}
		sess, err := decodeSession(prefix, ids[i], fields)
		if errors.Is(err, session.ErrNotFound) {
			continue // expired since the index was read
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sess)
	}
	sortSessions(out)
	return out, nil
}

// Count returns the number of live sessions of the virtual proxy from its
// index, without reading them.
func (s *Store) Count(ctx context.Context, prefix string) (int, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	now := strconv.FormatInt(s.opts.Now().UnixMilli(), 10)
	n, err := s.client.Do(ctx, s.client.B().Zcount().Key(s.keys.vp(prefix)).Min("("+now).Max("+inf").Build()).AsInt64()
	if err != nil {
		return 0, s.unavailable("count sessions", err)
	}
	return int(n), nil
}

var _ session.Counter = (*Store)(nil)

// fetchJSON runs cmd, a GET or GETDEL of one key, and decodes its JSON
// value: ErrNotFound when the key is absent, ErrUnavailable-wrapped errors
// when Redis is, and an error naming what when the value is damaged.
func fetchJSON[T any](ctx context.Context, s *Store, cmd rueidis.Completed, op, what string) (T, error) {
	var v T
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	raw, err := s.client.Do(ctx, cmd).AsBytes()
	if rueidis.IsRedisNil(err) {
		return v, session.ErrNotFound
	}
	if err != nil {
		return v, s.unavailable(op, err)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("%s in redis is damaged: %w", what, err)
	}
	return v, nil
}

// PutTicket stores the ticket until it expires.
func (s *Store) PutTicket(ctx context.Context, t session.Ticket) error {
	if t.Expires.IsZero() {
		return fmt.Errorf("put ticket %s: Expires is not set", session.Redact(t.ID))
	}
	v, _ := json.Marshal(ticketJSON{t.Prefix, t.UserDirectory, t.UserID, toAttributesJSON(t.Attributes), t.TargetURI, t.Expires.UnixMilli()})
	return s.putUntil(ctx, "put ticket", s.keys.ticket(t.ID), string(v), t.Expires)
}

// TakeTicket returns the ticket and deletes it with GETDEL: of two nodes
// redeeming the same ticket at once, one gets it.
func (s *Store) TakeTicket(ctx context.Context, id string) (session.Ticket, error) {
	tj, err := fetchJSON[ticketJSON](ctx, s, s.client.B().Getdel().Key(s.keys.ticket(id)).Build(),
		"take ticket", "ticket "+session.Redact(id))
	if err != nil {
		return session.Ticket{}, err
	}
	t := session.Ticket{ID: id, Prefix: tj.Prefix, UserDirectory: tj.Directory, UserID: tj.User,
		Attributes: tj.Attributes.list(), TargetURI: tj.TargetURI, Expires: time.UnixMilli(tj.Expires).UTC()}
	if !s.opts.Now().Before(t.Expires) {
		return session.Ticket{}, session.ErrNotFound // Redis's TTL rounds up to a millisecond
	}
	return t, nil
}

func (s *Store) putUntil(ctx context.Context, op, key, value string, expires time.Time) error {
	ttl := time.Until(expires)
	if ttl < time.Millisecond {
		return nil // already expired: there is nothing to keep
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	err := s.client.Do(ctx, s.client.B().Set().Key(key).Value(value).Px(ttl).Build()).Error()
	if err != nil {
		return s.unavailable(op, err)
	}
	return nil
}

// Secret returns the named secret: the first node to ask writes a random
// one with SET NX (no expiry), and every node then reads the one that won.
// A node keeps it after the first read, so a flushed Redis (which a new
// node would fill with another secret) does not change it under a running
// node; restart the nodes after flushing Redis.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("secret: empty name")
	}
	if v, ok := s.secrets.Load(name); ok {
		return v.([]byte), nil
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	key := s.keys.secret(name)
	err := s.client.Do(ctx, s.client.B().Set().Key(key).Value(rueidis.BinaryString(session.NewSecret())).Nx().Build()).Error()
	if err != nil && !rueidis.IsRedisNil(err) { // nil: another node's secret is there
		return nil, s.unavailable("secret", err)
	}
	v, err := s.client.Do(ctx, s.client.B().Get().Key(key).Build()).AsBytes()
	if err != nil {
		return nil, s.unavailable("secret", err)
	}
	if len(v) != session.SecretSize {
		return nil, fmt.Errorf("secret %q in redis (key %s) has %d bytes, not %d: delete the key and restart every node", name, key, len(v), session.SecretSize)
	}
	got, _ := s.secrets.LoadOrStore(name, v)
	return got.([]byte), nil
}

// Ping reports whether Redis answers, for health checks.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	if err := s.client.Do(ctx, s.client.B().Ping().Build()).Error(); err != nil {
		return s.unavailable("ping", err)
	}
	return nil
}

// Watch returns a channel of sessions that end on any node after Watch
// returns; see session.Store.
func (s *Store) Watch(ctx context.Context) <-chan session.Event {
	return s.watch.Watch(ctx)
}

// Close stops listening, closes every Watch channel and disconnects.
func (s *Store) Close() error {
	s.closing.Do(func() {
		s.cancel()
		s.done.Wait()
		s.watch.Close()
		s.client.Close()
	})
	return nil
}

// sortSessions orders sessions oldest first, as the memory store does.
func sortSessions(ss []session.Session) {
	slices.SortFunc(ss, func(a, b session.Session) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
}

var _ session.Pinger = (*Store)(nil)
