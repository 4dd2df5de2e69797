package proxy

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/openqps/openqps/internal/config"
)

// headerLogin takes the user from the virtual proxy's header
// (header_static, header_dynamic), as set by a trusted front (a single
// sign-on gateway). The header names the user on every request: a
// session cookie of another user gives way to a new session. Without the
// header, the cookie alone still counts.
type headerLogin struct{ p *Proxy }

func newHeaderLogin(p *Proxy, _ *virtualProxy) (loginMethod, error) { return headerLogin{p}, nil }

func (h headerLogin) login(rq *request, known verdict) (verdict, error) {
	h.p.claimCredentialSession(known)
	values := rq.r.Header.Values(rq.vp.cfg.Auth.HeaderName)
	if len(values) == 0 {
		return verdict{}, nil
	}
	dir, user, err := rq.vp.headerUser(values)
	if err != nil {
		return refusal(http.StatusBadRequest, "invalid user header", err.Error()), nil
	}
	return h.p.useIdentity(rq, known, dir, user, "header\x00"+values[0], nil)
}

// headerUser parses the values of the user header into a directory and
// user id.
func (vp *virtualProxy) headerUser(values []string) (dir, user string, err error) {
	a := &vp.cfg.Auth
	if len(values) != 1 {
		return "", "", fmt.Errorf("the %s header is sent %d times; send it once", a.HeaderName, len(values))
	}
	v := values[0]
	if a.AuthenticationMethod == config.AuthHeaderStatic {
		dir, user = a.StaticUserDirectory, v
	} else {
		pat := vp.userPattern
		rest, ok := strings.CutPrefix(v, pat.Prefix)
		if ok {
			rest, ok = strings.CutSuffix(rest, pat.Suffix)
		}
		var first, second string
		if ok {
			// A directory never holds the separator; a user id (an
			// e-mail address, say) may.
			if pat.DirectoryFirst {
				first, second, ok = strings.Cut(rest, pat.Separator)
			} else if i := strings.LastIndex(rest, pat.Separator); i >= 0 {
				first, second = rest[:i], rest[i+len(pat.Separator):]
			} else {
				ok = false
			}
		}
		if !ok {
			return "", "", fmt.Errorf("the %s header %q does not match the pattern %q", a.HeaderName, v, a.DynamicUserDirectory)
		}
		dir, user = first, second
		if !pat.DirectoryFirst {
			dir, user = second, first
		}
	}
	if dir, err = cleanIdentity("user directory", a.HeaderName, dir); err != nil {
		return "", "", err
	}
	if user, err = cleanIdentity("user id", a.HeaderName, user); err != nil {
		return "", "", err
	}
	return dir, user, nil
}
