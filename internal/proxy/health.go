package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/upstream"
)

// Back ends are watched two ways. Passively: a node that refuses a
// connection or times out on a request is taken out (pool.failed) and the
// request goes to another node when that is safe. Actively, when a
// virtual proxy sets health_check: every interval each node is asked for
// the check path, and only an answer with the expected status puts it
// (back) in.

// checkHealth runs the active health checks of pool until ctx ends.
func checkHealth(ctx context.Context, prefix string, pool *pool, hc config.HealthCheck, log *slog.Logger) {
	client := &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: hc.Timeout}).DialContext,
			MaxIdleConnsPerHost: 1,
		},
		Timeout:       hc.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(hc.Interval)
	defer tick.Stop()
	for {
		for _, n := range pool.nodes {
			checkNode(ctx, client, prefix, n, hc, log)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// checkNode asks one node for the check path and records the verdict,
// logging only changes.
func checkNode(ctx context.Context, client *http.Client, prefix string, n *node, hc config.HealthCheck, log *slog.Logger) {
	u := *n.url
	u.Path = strings.TrimSuffix(u.Path, "/") + hc.Path
	u.RawQuery = ""
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	req.Header.Set("User-Agent", "openqps-health-check")
	resp, err := client.Do(req)
	if ctx.Err() != nil {
		return
	}
	reason := ""
	switch {
	case err != nil:
		reason = err.Error()
	case resp.StatusCode != hc.ExpectedStatus:
		reason = "status " + resp.Status
	}
	if resp != nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	wasDown := n.down.Load()
	if reason == "" {
		if wasDown {
			n.down.Store(false)
			log.Info("back end healthy again", "event", "backend.up", "vp", prefix, "backend", n.url.Host)
		}
		return
	}
	n.retryAt.Store(maxTime)
	n.down.Store(true)
	if !wasDown {
		log.Warn("back end failed its health check", "event", "backend.down", "vp", prefix, "backend", n.url.Host, "reason", reason)
	}
}

// unreachable reports whether a forwarding error means the node itself is
// in trouble (refused, unreachable, timed out, hung up without an answer)
// rather than the request.
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, upstream.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// dialFailed reports whether err happened before anything was sent: the
// request can then go to another node, whatever its method and body.
func dialFailed(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
