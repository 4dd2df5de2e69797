package qpsapi

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// route is a parsed trusted-API path:
// /qps/[{prefix}/]{resource}[/{arg}...].
type route struct {
	prefix   string   // virtual proxy prefix; "" is the default one
	resource string   // ticket, session, user, alive, error
	args     []string // path-unescaped segments after the resource
}

// resources are the trusted API's resource names. A virtual proxy may
// not use one as its prefix (config.ReservedPrefixes), which is what
// makes the first segment after /qps/ unambiguous.
var resources = map[string]bool{
	"ticket": true, "session": true, "user": true, "alive": true, "error": true,
}

// routeError says why a path is no API route. Its message may quote a
// segment of the path, which may be a secret the caller put in the wrong
// place: logDetail quotes it as logSegment does.
type routeError struct {
	format  string // with one verb (%q or %s), for segment
	segment string
}

func (e *routeError) Error() string { return fmt.Sprintf(e.format, e.segment) }

func (e *routeError) logDetail(cfg *config.Config) string {
	return fmt.Sprintf(e.format, logSegment(e.segment, cfg))
}

// parseRoute splits an escaped path. Empty segments are dropped, so a
// trailing slash and "//" (as some clients produce) are tolerated. Dot
// segments are refused: the API never resolves them.
func parseRoute(escapedPath string) (route, error) {
	var segs []string
	for _, s := range strings.Split(escapedPath, "/") {
		if s == "" {
			continue
		}
		u, err := url.PathUnescape(s)
		if err != nil {
			return route{}, &routeError{"path segment %q is not valid percent-encoding", s}
		}
		if u == "." || u == ".." {
			return route{}, errors.New("path may not contain . or .. segments")
		}
		segs = append(segs, u)
	}
	if len(segs) == 0 || !strings.EqualFold(segs[0], "qps") {
		return route{}, errors.New("the trusted API lives under /qps/")
	}
	segs = segs[1:]
	if len(segs) == 0 {
		return route{}, errors.New("name a resource: /qps/[{prefix}/](ticket|session|user|alive|error)")
	}
	var rt route
	first := strings.ToLower(segs[0])
	if !resources[first] {
		rt.prefix = first
		segs = segs[1:]
		if len(segs) == 0 {
			return route{}, &routeError{"name a resource after the virtual proxy prefix: /qps/%s/(ticket|session|user)", rt.prefix}
		}
	}
	rt.resource = strings.ToLower(segs[0])
	if !resources[rt.resource] {
		return route{}, &routeError{"unknown resource %q: use ticket, session, user, alive or error", segs[0]}
	}
	rt.args = segs[1:]
	return rt, nil
}

// LogPath returns an API path fit for logs, under the configuration in
// force: see redactPath.
func (s *Server) LogPath(p string) string { return redactPath(p, s.cfg.Load()) }

// redactPath returns p with every segment that may be a secret replaced
// by its session.Redact hash ("sha256:…"). A path that reaches the log is
// often a mistyped one (/qps/sessionvp/<id> without "session/", /qps/sesion/<id>),
// so the rule does not rely on the path being well formed: it keeps what
// it knows is no secret — "qps", the resource names, a configured prefix
// right after "qps", and any segment too short to be a session id the API
// accepts or a ticket (see logSegment) — and hashes the rest. The
// arguments of the session resource are session ids and are always
// hashed.
func redactPath(p string, cfg *config.Config) string {
	segs := strings.Split(p, "/")
	pos, resource := 0, ""
	for i, seg := range segs {
		if seg == "" {
			continue
		}
		lower := strings.ToLower(seg)
		switch {
		case pos == 0 && lower == "qps":
		case resource == "" && resources[lower]:
			resource = lower
		case pos == 1 && resource == "" && isPrefix(cfg, lower):
		case resource == "session":
			segs[i] = redacted(seg)
		default:
			segs[i] = logSegment(seg, cfg)
		}
		pos++
	}
	return strings.Join(segs, "/")
}

// isPrefix reports whether a path segment is a configured virtual proxy
// prefix.
func isPrefix(cfg *config.Config, seg string) bool {
	_, ok := cfg.VirtualProxy(seg)
	return ok
}

// ticketIDLength is the length of every ticket openqps issues.
var ticketIDLength = len(session.NewTicketID())

// logSegment returns a path segment (or a value taken from one) fit for
// logs: as it is when it is shorter than any session id the session API
// accepts (sessions.min_id_length) and than a ticket, so that a mistyped
// resource name stays readable; otherwise its hash.
func logSegment(seg string, cfg *config.Config) string {
	if len(seg) < min(cfg.Sessions.MinIDLength, ticketIDLength) {
		return seg
	}
	return redacted(seg)
}

func redacted(secret string) string { return "sha256:" + session.Redact(secret) }
