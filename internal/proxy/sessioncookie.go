package proxy

import (
	"errors"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// cookieLogin recognises the virtual proxy's session cookie: the id of a
// stored session, or an anonymous session's signed cookie (anonymous.go).
// It runs on every request: it allocates nothing for a stored session.
type cookieLogin struct{ p *Proxy }

// maxSessionCookies bounds the session cookie values one request may make
// openqps look up.
const maxSessionCookies = 4

// login looks up the session named by the cookie and marks it used.
//
// At most maxSessionCookies values of the cookie are looked up: a browser
// sends one, or a few when cookies of several paths or domains share the
// name; hundreds in one header would make every request hundreds of store
// lookups (network round trips with Redis).
func (c cookieLogin) login(rq *request, _ verdict) (verdict, error) {
	p := c.p
	ctx := rq.r.Context()
	var v verdict
	var storeErr error
	var anonymousKey []byte
	anonymousVP := rq.vp.cfg.Auth.AnonymousAccess != config.AnonymousNone
	looked := 0
	cookieValues(rq.r.Header["Cookie"], rq.vp.cookie(rq.scheme), func(id string) bool {
		if looked++; looked > maxSessionCookies {
			return true
		}
		if anonymousVP && len(id) == anonymousCookieLen {
			if anonymousKey == nil {
				if anonymousKey, storeErr = p.anonymousKey(rq); storeErr != nil {
					return true
				}
			}
			if v = p.anonymousFromCookie(rq, anonymousKey, id); v.kind == identified {
				return true
			}
		}
		s, err := p.store.Get(ctx, rq.vp.cfg.Prefix, id)
		switch {
		case err == nil:
			v = identity(s)
			return true
		case !errors.Is(err, session.ErrNotFound):
			storeErr = err
			return true
		}
		return false
	})
	if storeErr != nil {
		return verdict{}, storeErr
	}
	if v.kind != identified || v.anonymous {
		return v, nil
	}
	if err := p.store.Touch(ctx, v.session.Prefix, v.session.ID, p.opts.Now()); err != nil && !errors.Is(err, session.ErrNotFound) {
		return verdict{}, err
	}
	return v, nil
}
