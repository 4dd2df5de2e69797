package qpsapi

import (
	"fmt"
	"net/url"
	"strings"

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
			return route{}, fmt.Errorf("path segment %q is not valid percent-encoding", s)
		}
		if u == "." || u == ".." {
			return route{}, fmt.Errorf("path may not contain . or .. segments")
		}
		segs = append(segs, u)
	}
	if len(segs) == 0 || !strings.EqualFold(segs[0], "qps") {
		return route{}, fmt.Errorf("the trusted API lives under /qps/")
	}
	segs = segs[1:]
	if len(segs) == 0 {
		return route{}, fmt.Errorf("name a resource: /qps/[{prefix}/](ticket|session|user|alive|error)")
	}
	var rt route
	first := strings.ToLower(segs[0])
	if !resources[first] {
		rt.prefix = first
		segs = segs[1:]
		if len(segs) == 0 {
			return route{}, fmt.Errorf("name a resource after the virtual proxy prefix: /qps/%s/(ticket|session|user)", rt.prefix)
		}
	}
	rt.resource = strings.ToLower(segs[0])
	if !resources[rt.resource] {
		return route{}, fmt.Errorf("unknown resource %q: use ticket, session, user, alive or error", segs[0])
	}
	rt.args = segs[1:]
	return rt, nil
}

// RedactPath returns an API path fit for logs: the session id of
// /qps/[{prefix}/]session/{id}, a bearer secret, replaced by its
// session.Redact hash.
func RedactPath(p string) string {
	const marker = "/session/"
	i := 0
	for ; i+len(marker) <= len(p); i++ {
		// EqualFold on the bytes themselves: strings.ToLower would
		// change the length of a path holding invalid UTF-8, and the
		// index would miss the id.
		if strings.EqualFold(p[i:i+len(marker)], marker) {
			break
		}
	}
	if i+len(marker) >= len(p) {
		return p
	}
	head, id := p[:i+len(marker)], p[i+len(marker):]
	return head + "sha256:" + session.Redact(strings.TrimSuffix(id, "/"))
}
