// Package qpsapi is the trusted API of openqps, QPS's port 4243: the
// session, ticket and user APIs through which a login module tells the
// proxy who a browser is. Callers are authenticated by their TLS client
// certificate (checked by the listener) and every call carries an Xrfkey.
package qpsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/httperror"
	"github.com/openqps/openqps/internal/session"
)

// Server serves the trusted API. It is safe for concurrent use; SetConfig
// may be called while requests are served (a reload).
type Server struct {
	store session.Store
	log   *slog.Logger
	now   func() time.Time
	cfg   atomic.Pointer[config.Config]
}

// New returns a Server for cfg, keeping sessions in store. now may be nil
// (time.Now).
func New(cfg *config.Config, store session.Store, log *slog.Logger, now func() time.Time) *Server {
	if now == nil {
		now = time.Now
	}
	s := &Server{store: store, log: log, now: now}
	s.cfg.Store(cfg)
	return s
}

// SetConfig makes cfg apply to the requests that start after it returns.
func (s *Server) SetConfig(cfg *config.Config) { s.cfg.Store(cfg) }

// call is one API request on its way through the handlers.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	cfg    *config.Config
	vp     *config.VirtualProxy
	rt     route
	caller string // subject of the client certificate
}

// ServeHTTP checks the client certificate and the Xrfkey, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, r: r, cfg: s.cfg.Load()}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		// The listener requires a verified certificate; this guards a
		// misconfigured listener.
		s.fail(c, http.StatusForbidden, "client certificate required", "call the trusted API over TLS with a client certificate issued by openqps's CA (client.pem, client_key.pem)")
		return
	}
	c.caller = r.TLS.VerifiedChains[0][0].Subject.String()
	if err := CheckXrfkey(r); err != nil {
		s.fail(c, http.StatusForbidden, "xrfkey", err.Error())
		return
	}
	rt, err := parseRoute(r.URL.EscapedPath())
	if err != nil {
		logDetail := err.Error()
		if re, ok := err.(*routeError); ok {
			logDetail = re.logDetail(c.cfg)
		}
		s.failLogged(c, http.StatusNotFound, "unknown path", err.Error(), logDetail)
		return
	}
	c.rt = rt
	vp, ok := c.cfg.VirtualProxy(rt.prefix)
	if !ok {
		detail := "no virtual proxy has the prefix %q"
		s.failLogged(c, http.StatusNotFound, "unknown virtual proxy", fmt.Sprintf(detail, rt.prefix), fmt.Sprintf(detail, logSegment(rt.prefix, c.cfg)))
		return
	}
	c.vp = vp
	switch rt.resource {
	case "alive":
		s.alive(c)
	case "error":
		s.errorLog(c)
	case "ticket":
		s.ticket(c)
	case "session":
		s.session(c)
	case "user":
		s.user(c)
	}
}

func (s *Server) alive(c *call) {
	if !s.allow(c, http.MethodGet, http.MethodHead) {
		return
	}
	s.reply(c, http.StatusOK, map[string]bool{"value": true})
}

func (s *Server) errorLog(c *call) {
	if !s.allow(c, http.MethodPost) {
		return
	}
	var req errorRequest
	if !s.decode(c, &req) {
		return
	}
	s.log.Error("error reported by login module", "caller", c.caller,
		"user_directory", req.UserDirectory, "user_id", req.UserId, "message", req.Message)
	c.w.WriteHeader(http.StatusNoContent)
}

func (s *Server) ticket(c *call) {
	if len(c.rt.args) != 0 {
		s.fail(c, http.StatusNotFound, "unknown path", "the ticket API is POST /qps/[{prefix}/]ticket")
		return
	}
	if !s.allow(c, http.MethodPost) {
		return
	}
	var req UserRequest
	if !s.decode(c, &req) {
		return
	}
	dir, user, ok := s.identity(c, req)
	if !ok {
		return
	}
	ctx := c.r.Context()
	now := s.now()
	t := session.Ticket{
		ID:            session.NewTicketID(),
		Prefix:        c.vp.Prefix,
		UserDirectory: dir,
		UserID:        user,
		Attributes:    req.Attributes,
		Expires:       now.Add(c.cfg.Sessions.TicketTTL),
	}
	var targetURI *string
	if req.TargetId != "" {
		// The targetId is the signed target itself (session.SealTarget):
		// nothing was stored for it, and it may be used again until it
		// expires, as a user may retry a login.
		key, err := s.store.Secret(ctx, session.TargetSecret)
		if err != nil {
			s.storeFailed(c, err)
			return
		}
		target, err := session.OpenTarget(key, req.TargetId, now)
		if err == nil && target.Prefix != c.vp.Prefix {
			err = fmt.Errorf("it was issued for virtual proxy %q", target.Prefix)
		}
		if err != nil {
			s.fail(c, http.StatusBadRequest, "unknown TargetId", fmt.Sprintf("TargetId %s is not valid for virtual proxy %q (%v); pass the targetId the proxy sent, within %s, or leave it empty", quoteShort(req.TargetId), c.vp.Prefix, err, c.cfg.Sessions.TargetTTL))
			return
		}
		t.TargetURI = target.URI
		targetURI = &target.URI
	}
	if err := s.store.PutTicket(ctx, t); err != nil {
		s.storeFailed(c, err)
		return
	}
	s.log.Info("ticket issued", "event", "ticket.issued", "vp", c.vp.Prefix, "user_directory", dir, "user_id", user,
		"ticket", session.Redact(t.ID), "caller", c.caller)
	s.reply(c, http.StatusCreated, TicketInfo{
		UserDirectory: dir, UserId: user, Attributes: req.Attributes, Ticket: t.ID, TargetUri: targetURI,
	})
}

// quoteShort quotes a caller's value for an error detail, cut to what
// identifies it: a targetId can be several kilobytes.
func quoteShort(v string) string {
	const max = 64
	if len(v) <= max {
		return strconv.Quote(v)
	}
	return strconv.Quote(v[:max]) + "…"
}

func (s *Server) session(c *call) {
	switch len(c.rt.args) {
	case 0:
		switch c.r.Method {
		case http.MethodPost:
			s.addSession(c)
		case http.MethodGet:
			s.listSessions(c)
		default:
			s.methodNotAllowed(c, http.MethodGet, http.MethodPost)
		}
	case 1:
		switch c.r.Method {
		case http.MethodGet:
			s.getSession(c, c.rt.args[0])
		case http.MethodDelete:
			s.deleteSession(c, c.rt.args[0])
		default:
			s.methodNotAllowed(c, http.MethodGet, http.MethodDelete)
		}
	default:
		s.fail(c, http.StatusNotFound, "unknown path", "use /qps/[{prefix}/]session or /qps/[{prefix}/]session/{id}")
	}
}

func (s *Server) addSession(c *call) {
	var req UserRequest
	if !s.decode(c, &req) {
		return
	}
	dir, user, ok := s.identity(c, req)
	if !ok {
		return
	}
	if err := checkSessionID(req.SessionId, c.cfg.Sessions.MinIDLength); err != nil {
		s.fail(c, http.StatusBadRequest, "invalid SessionId", err.Error())
		return
	}
	ctx := c.r.Context()
	if limit := c.cfg.Sessions.MaxPerUser; limit > 0 {
		existing, err := s.store.ByUser(ctx, c.vp.Prefix, dir, user)
		if err != nil {
			s.storeFailed(c, err)
			return
		}
		if len(existing) >= limit {
			s.fail(c, http.StatusTooManyRequests, "too many sessions", fmt.Sprintf("%s\\%s already has %d sessions in virtual proxy %q, the configured maximum (sessions.max_per_user); end one with DELETE /qps/%ssession/{id}", dir, user, len(existing), c.vp.Prefix, slashed(c.vp.Prefix)))
			return
		}
	}
	now := s.now()
	sess := session.Session{
		Prefix: c.vp.Prefix, ID: req.SessionId, UserDirectory: dir, UserID: user,
		Attributes: req.Attributes, Created: now, LastUsed: now, Timeout: c.vp.SessionInactivityTimeout,
	}
	err := s.store.Add(ctx, sess)
	if errors.Is(err, session.ErrExists) {
		s.fail(c, http.StatusConflict, "session exists", "a live session with this SessionId exists in this virtual proxy; it is never overwritten: generate a new random SessionId")
		return
	}
	if err != nil {
		s.storeFailed(c, err)
		return
	}
	s.log.Info("session added", "event", "session.added", "vp", c.vp.Prefix, "user_directory", dir, "user_id", user,
		"session", session.Redact(sess.ID), "caller", c.caller)
	s.reply(c, http.StatusCreated, toJSON(sess))
}

func (s *Server) listSessions(c *call) {
	list, err := s.store.List(c.r.Context(), c.vp.Prefix)
	if err != nil {
		s.storeFailed(c, err)
		return
	}
	s.reply(c, http.StatusOK, toJSONList(list))
}

func (s *Server) getSession(c *call, id string) {
	sess, err := s.store.Get(c.r.Context(), c.vp.Prefix, id)
	if errors.Is(err, session.ErrNotFound) {
		// QPS clients written against QPS test the body for null.
		s.reply(c, http.StatusOK, nil)
		return
	}
	if err != nil {
		s.storeFailed(c, err)
		return
	}
	s.reply(c, http.StatusOK, toJSON(sess))
}

func (s *Server) deleteSession(c *call, id string) {
	sess, err := s.store.Delete(c.r.Context(), c.vp.Prefix, id)
	if errors.Is(err, session.ErrNotFound) {
		s.fail(c, http.StatusNotFound, "session not found", fmt.Sprintf("no live session with this id in virtual proxy %q", c.vp.Prefix))
		return
	}
	if err != nil {
		s.storeFailed(c, err)
		return
	}
	s.log.Info("session deleted", "event", "session.deleted", "vp", c.vp.Prefix, "user_directory", sess.UserDirectory,
		"user_id", sess.UserID, "session", session.Redact(sess.ID), "caller", c.caller)
	s.reply(c, http.StatusOK, toJSON(sess))
}

func (s *Server) user(c *call) {
	if len(c.rt.args) != 2 {
		s.fail(c, http.StatusNotFound, "unknown path", "use /qps/[{prefix}/]user/{directory}/{userId}")
		return
	}
	dir, user := c.rt.args[0], c.rt.args[1]
	ctx := c.r.Context()
	switch c.r.Method {
	case http.MethodGet:
		list, err := s.store.ByUser(ctx, c.vp.Prefix, dir, user)
		if err != nil {
			s.storeFailed(c, err)
			return
		}
		s.reply(c, http.StatusOK, toJSONList(list))
	case http.MethodDelete:
		list, err := s.store.DeleteUser(ctx, c.vp.Prefix, dir, user)
		if err != nil {
			s.storeFailed(c, err)
			return
		}
		s.log.Info("user logged out", "event", "user.logged_out", "vp", c.vp.Prefix, "user_directory", dir,
			"user_id", user, "sessions", len(list), "caller", c.caller)
		s.reply(c, http.StatusOK, toJSONList(list))
	default:
		s.methodNotAllowed(c, http.MethodGet, http.MethodDelete)
	}
}

// identity trims and checks the user of a session or ticket request and
// its attributes.
func (s *Server) identity(c *call, req UserRequest) (dir, user string, ok bool) {
	dir, err := cleanUser("UserDirectory", req.UserDirectory)
	if err == nil {
		user, err = cleanUser("UserId", req.UserId)
	}
	if err == nil {
		err = checkAttributes(req.Attributes)
	}
	if err != nil {
		s.fail(c, http.StatusBadRequest, "invalid user", err.Error())
		return "", "", false
	}
	return dir, user, true
}

// checkAttributes refuses what could not travel safely in the
// X-Qlik-Security header.
func checkAttributes(attrs Attributes) error {
	for _, a := range attrs {
		if strings.TrimSpace(a.Key) == "" {
			return errors.New("an attribute has an empty name")
		}
		if session.ReservedAttribute(a.Key) {
			return fmt.Errorf("attribute %q is named like a field openqps sets in X-Qlik-Security (Context, SecureRequest); rename it", a.Key)
		}
		for _, r := range a.Key + a.Value {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("attribute %q contains a control character", a.Key)
			}
		}
	}
	return nil
}

// checkSessionID enforces what makes a caller-chosen session id safe: long
// enough not to be guessed, and only characters a cookie value can carry.
func checkSessionID(id string, minLen int) error {
	if len(id) < minLen {
		return fmt.Errorf("SessionId must be at least %d characters of random data (a GUID is fine); got %d", minLen, len(id))
	}
	if len(id) > 256 {
		return errors.New("SessionId may be at most 256 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("-._~", c) >= 0) {
			return errors.New("SessionId may contain only letters, digits and - . _ ~ (it becomes a cookie value)")
		}
	}
	return nil
}

func slashed(prefix string) string {
	if prefix == "" {
		return ""
	}
	return prefix + "/"
}

// decode reads the JSON body of c into v, answering 413, 415 or 400 when
// it cannot.
func (s *Server) decode(c *call, v any) bool {
	if ct := c.r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			s.fail(c, http.StatusUnsupportedMediaType, "unsupported content type", fmt.Sprintf("send the body as JSON with Content-Type: application/json, not %q", ct))
			return false
		}
	}
	body := http.MaxBytesReader(c.w, c.r.Body, c.cfg.API.MaxBodyBytes)
	err := decodeBody(body, v)
	var tooBig *http.MaxBytesError
	var slow net.Error
	switch {
	case errors.As(err, &tooBig):
		s.fail(c, http.StatusRequestEntityTooLarge, "body too large", fmt.Sprintf("the body may be at most %d bytes", c.cfg.API.MaxBodyBytes))
		return false
	case errors.As(err, &slow) && slow.Timeout():
		s.fail(c, http.StatusRequestTimeout, "request body too slow", "the body did not arrive within the body timeout (timeouts.request_body)")
		return false
	case err != nil:
		s.fail(c, http.StatusBadRequest, "invalid JSON", err.Error())
		return false
	}
	return true
}

func (s *Server) allow(c *call, methods ...string) bool {
	for _, m := range methods {
		if c.r.Method == m {
			return true
		}
	}
	s.methodNotAllowed(c, methods...)
	return false
}

func (s *Server) methodNotAllowed(c *call, methods ...string) {
	c.w.Header().Set("Allow", strings.Join(methods, ", "))
	s.fail(c, http.StatusMethodNotAllowed, "method not allowed", fmt.Sprintf("%s is not allowed here; use %s", c.r.Method, strings.Join(methods, " or ")))
}

func (s *Server) storeFailed(c *call, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if errors.Is(err, session.ErrFull) {
		s.fail(c, http.StatusTooManyRequests, "session store full", "openqps holds as many sessions as store.max_sessions allows; end sessions (DELETE /qps/session/{id} or /qps/user/{directory}/{userId}), wait for them to time out, or raise the limit")
		return
	}
	s.log.Error("session store failed", "event", "store.error", "path", s.LogPath(c.r.URL.Path), "err", err)
	httperror.WriteJSON(c.w, http.StatusServiceUnavailable, "session store unavailable", "the session store cannot be reached; retry shortly")
}

// fail answers a rejection and logs it once.
func (s *Server) fail(c *call, status int, msg, detail string) {
	s.failLogged(c, status, msg, detail, detail)
}

// failLogged is fail with a detail for the log that differs from the
// caller's: the caller may be told a path segment it sent, the log gets
// it redacted.
func (s *Server) failLogged(c *call, status int, msg, detail, logDetail string) {
	s.log.Warn("api request rejected", "event", "api.rejected", "status", status, "method", c.r.Method,
		"path", redactPath(c.r.URL.Path, c.cfg), "error", msg, "detail", logDetail, "caller", c.caller, "remote", c.r.RemoteAddr)
	httperror.WriteJSON(c.w, status, msg, detail)
}

func (s *Server) reply(c *call, status int, v any) {
	writeJSON(c.w, status, v)
}

// writeJSON writes v compactly, with Content-Length and no trailing
// newline, in one write: clients such as qlik-auth parse only the first
// chunk they receive.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error","detail":"response could not be encoded"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}
