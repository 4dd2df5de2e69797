package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// personal serves QPS's personal API under /{prefix}/qps/: the current
// user (GET /qps/user) and logout (DELETE /qps/user). It answers in
// camelCase, as QPS does. Nothing under /qps/ is forwarded to a back end.
func (p *Proxy) personal(rq *request) {
	switch rq.path {
	case "/qps/user", "/qps/user/":
	case "/qps/csrftoken", "/qps/csrftoken/":
		p.serveCSRFToken(rq)
		return
	default:
		p.reject(rq, http.StatusNotFound, "unknown personal API path", "the personal API offers GET and DELETE /"+prefixSlash(rq.vp.cfg.Prefix)+"qps/user")
		return
	}
	switch rq.r.Method {
	case http.MethodGet, http.MethodHead:
		p.currentUser(rq)
	case http.MethodDelete:
		p.logout(rq)
	default:
		rq.w.Header().Set("Allow", "GET, DELETE")
		p.reject(rq, http.StatusMethodNotAllowed, "method not allowed", "use GET or DELETE")
	}
}

type personalUser struct {
	UserDirectory string `json:"userDirectory,omitempty"`
	UserID        string `json:"userId,omitempty"`
	UserName      string `json:"userName,omitempty"`
	LogoutURI     string `json:"logoutUri,omitempty"`
	Session       string `json:"session,omitempty"`
	LoginURI      string `json:"loginUri,omitempty"`
}

func (p *Proxy) currentUser(rq *request) {
	if !rq.authenticated() {
		user := personalUser{Session: "inactive"}
		if !p.offerLogin(rq, &user) {
			return
		}
		writeJSON(rq.w, http.StatusOK, user)
		return
	}
	s := rq.session
	if s.UserDirectory == anonymousDirectory && rq.vp.cfg.Auth.AnonymousAccess != config.AnonymousNone {
		// QPS shows an anonymous user with an inactive session.
		user := personalUser{UserDirectory: s.UserDirectory, UserID: s.UserID, Session: "inactive"}
		if !p.offerLogin(rq, &user) {
			return
		}
		writeJSON(rq.w, http.StatusOK, user)
		return
	}
	writeJSON(rq.w, http.StatusOK, personalUser{
		UserDirectory: s.UserDirectory,
		UserID:        s.UserID,
		UserName:      s.UserID,
		LogoutURI:     rq.scheme + "://" + rq.routes.forwardedHost(rq.scheme, rq.r.Host, rq.vp) + "/" + prefixSlash(s.Prefix) + "qps/user",
	})
}

// offerLogin sets user.LoginURI, as QPS does, when the request names a
// targetUri on this proxy and the virtual proxy has an authentication
// module: the address that logs the browser in and returns it there. A
// targetUri elsewhere, or longer than session.MaxTargetURI, gets no
// loginUri (no open redirect). Nothing is stored for it (see loginURL).
// It returns false when it answered the request itself (the store
// failed).
func (p *Proxy) offerLogin(rq *request, user *personalUser) bool {
	raw, _, found := queryParamFold(rq.r.URL.RawQuery, "targeturi")
	if !found || rq.vp.cfg.AuthenticationModuleRedirectURI == "" || !rq.routes.addressAllowed(rq.scheme, rq.r.Host, rq.vp) {
		return true
	}
	target, err := p.allowedTarget(rq, "targetUri", raw)
	if err != nil {
		p.log.Info("login offer refused", "event", "frontend.target_refused", "vp", rq.vp.cfg.Prefix, "reason", err.Error(), "remote", rq.r.RemoteAddr)
		return true
	}
	login, err := p.loginURL(rq, target)
	if errors.Is(err, session.ErrTargetTooLong) {
		p.log.Info("login offer refused", "event", "frontend.target_refused", "vp", rq.vp.cfg.Prefix, "reason", "targetUri is longer than "+strconv.Itoa(session.MaxTargetURI)+" bytes", "remote", rq.r.RemoteAddr)
		return true
	}
	if err != nil {
		p.storeFailed(rq, err)
		return false
	}
	user.LoginURI = login
	return true
}

func (p *Proxy) logout(rq *request) {
	if rq.authenticated() && rq.anonymous {
		p.endAnonymous(rq)
	} else if rq.authenticated() {
		_, err := p.store.Delete(rq.r.Context(), rq.session.Prefix, rq.session.ID)
		if err != nil && !errors.Is(err, session.ErrNotFound) {
			p.storeFailed(rq, err)
			return
		}
		p.log.Info("user logged out", "event", "session.logged_out", "vp", rq.session.Prefix,
			"user_directory", rq.session.UserDirectory, "user_id", rq.session.UserID, "session", session.Redact(rq.session.ID))
	}
	rq.vp.clearCookie(rq)
	rq.w.WriteHeader(http.StatusNoContent)
}

func prefixSlash(prefix string) string {
	if prefix == "" {
		return ""
	}
	return prefix + "/"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}
