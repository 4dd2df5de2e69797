package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/openqps/openqps/internal/session"
)

// IsUpgrade reports whether r asks to switch protocols: an Upgrade
// header, and "upgrade" among its Connection tokens. It is the front
// end's own test (isUpgrade), offered to the server's guard, which
// refuses every upgrade but a websocket and counts websockets, so that
// both sides agree on what an upgrade is.
func IsUpgrade(r *http.Request) bool { return isUpgrade(r) }

// tunnelSet is every open websocket tunnel, by session, so that the end
// of a session (reported by the store's Watch, from any node) can end its
// tunnels. It is safe for concurrent use.
type tunnelSet struct {
	mu        sync.Mutex
	closed    bool // after endAll: new tunnels are ended at once
	bySession map[tunnelKey]map[*tunnel]struct{}
	empty     chan struct{} // closed and replaced when the set becomes empty
}

type tunnelKey struct{ prefix, id string }

// add registers t; false when the set was closed for shutdown.
func (s *tunnelSet) add(t *tunnel) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bySession == nil {
		s.bySession = map[tunnelKey]map[*tunnel]struct{}{}
	}
	k := tunnelKey{t.prefix, t.sessionID}
	if s.bySession[k] == nil {
		s.bySession[k] = map[*tunnel]struct{}{}
	}
	s.bySession[k][t] = struct{}{}
	return !s.closed
}

func (s *tunnelSet) remove(t *tunnel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := tunnelKey{t.prefix, t.sessionID}
	delete(s.bySession[k], t)
	if len(s.bySession[k]) == 0 {
		delete(s.bySession, k)
	}
	if len(s.bySession) == 0 && s.empty != nil {
		close(s.empty)
		s.empty = nil
	}
}

// endSession ends the tunnels of one session and returns how many.
func (s *tunnelSet) endSession(prefix, id string, e *tunnelEnd) int {
	s.mu.Lock()
	ts := s.bySession[tunnelKey{prefix, id}]
	list := make([]*tunnel, 0, len(ts))
	for t := range ts {
		list = append(list, t)
	}
	s.mu.Unlock()
	return endTunnels(list, e)
}

// endWhere ends the tunnels whose virtual proxy prefix matches.
func (s *tunnelSet) endWhere(match func(prefix string) bool, e *tunnelEnd) int {
	var list []*tunnel
	s.mu.Lock()
	for k, ts := range s.bySession {
		if match(k.prefix) {
			for t := range ts {
				list = append(list, t)
			}
		}
	}
	s.mu.Unlock()
	return endTunnels(list, e)
}

// endTunnels ends each tunnel of list, collected under the set's lock
// and ended outside it (ending writes to the connections), and returns
// how many.
func endTunnels(list []*tunnel, e *tunnelEnd) int {
	for _, t := range list {
		t.end(e)
	}
	return len(list)
}

// endAll ends every tunnel, refuses new ones, and waits until all are
// closed or ctx ends.
func (s *tunnelSet) endAll(ctx context.Context, e *tunnelEnd) error {
	s.mu.Lock()
	s.closed = true
	var empty chan struct{}
	if len(s.bySession) > 0 {
		if s.empty == nil {
			s.empty = make(chan struct{})
		}
		empty = s.empty
	}
	s.mu.Unlock()
	if empty == nil {
		return nil
	}
	s.endWhere(func(string) bool { return true }, e)
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// takeActivity returns the sessions whose tunnels carried traffic since
// the last call, clearing their marks, and those whose tunnels did not.
func (s *tunnelSet) takeActivity() (active, idle []tunnelKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ts := range s.bySession {
		used, anonymous := false, false
		for t := range ts {
			anonymous = t.anonymous
			if t.active.Swap(false) {
				used = true
			}
		}
		switch {
		case anonymous:
			// Not in the store: its cookie is its record (anonymous.go).
		case used:
			active = append(active, k)
		default:
			idle = append(idle, k)
		}
	}
	return active, idle
}

// watchSessions ends the tunnels of every session that ends, wherever it
// ended, and forgets its sticky pin. It runs until the events channel is
// closed (Close, or the store closed).
func (p *Proxy) watchSessions(events <-chan session.Event) {
	for ev := range events {
		if n := p.tunnels.endSession(ev.Prefix, ev.ID, endFor(ev.Kind)); n > 0 {
			p.log.Info("websockets of an ended session closed", "event", "websocket.session_ended", "vp", ev.Prefix,
				"session", session.Redact(ev.ID), "reason", ev.Kind.String(), "websockets", n)
		}
		if vp := p.routes.Load().vpByPrefix(ev.Prefix); vp != nil {
			if s, ok := vp.pool.policy.(*sticky); ok {
				s.forget(ev.ID)
			}
		}
	}
}

// recordActivity runs every interval. It marks the sessions whose
// websockets carried traffic as used: websocket traffic keeps a session
// alive, recorded coarsely so a chatty socket costs one store write per
// interval. And it looks up the sessions whose websockets were idle: one
// that is gone without the store having said so (it expired and the
// store's sweep has not reported it yet, or the event was dropped) has its
// websockets ended now rather than at the next sweep.
func (p *Proxy) recordActivity(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		active, idle := p.tunnels.takeActivity()
		for _, k := range active {
			err := p.store.Touch(ctx, k.prefix, k.id, p.opts.Now())
			switch {
			case errors.Is(err, session.ErrNotFound):
				p.endVanished(k, endClosed)
			case err != nil && ctx.Err() == nil:
				p.log.Debug("websocket activity not recorded", "vp", k.prefix, "session", session.Redact(k.id), "err", err)
			}
		}
		for _, k := range idle {
			if _, err := p.store.Get(ctx, k.prefix, k.id); errors.Is(err, session.ErrNotFound) {
				p.endVanished(k, endTimedOut) // idle and gone: its inactivity timeout passed
			}
		}
	}
}

// endVanished ends the websockets of a session found missing.
func (p *Proxy) endVanished(k tunnelKey, e *tunnelEnd) {
	if n := p.tunnels.endSession(k.prefix, k.id, e); n > 0 {
		p.log.Info("websockets of an ended session closed", "event", "websocket.session_ended", "vp", k.prefix,
			"session", session.Redact(k.id), "reason", "not in the store", "websockets", n)
	}
}
