package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwksCache holds the signing keys of a JWT virtual proxy's jwt.jwks_uri,
// by kid. A token with a kid it does not know makes it fetch the key set
// again, so a key rotated at the issuer is picked up without a restart;
// but at most once per jwksRefreshInterval, so that a flood of tokens
// with random kids costs the issuer one request a second, not one per
// token. It is safe for concurrent use; one fetch runs at a time, and
// requests that need it wait for it without holding a lock.
type jwksCache struct {
	uri    string
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	mu       sync.Mutex
	keys     map[string]any // by kid; "" is a key without kid
	fetched  time.Time      // when the last fetch started (zero: never)
	inFlight chan struct{}  // closed when the running fetch ends; nil when none runs
	lastErr  error
}

// jwksRefreshInterval is the least time between two fetches of a key set.
const jwksRefreshInterval = time.Second

// maxJWKSBytes bounds a key set's size.
const maxJWKSBytes = 1 << 20

func newJWKSCache(uri string, now func() time.Time, log *slog.Logger) *jwksCache {
	return &jwksCache{uri: uri, client: &http.Client{Timeout: oidcHTTPTimeout}, now: now, log: log}
}

// unknownKeyError is a token whose kid the key set does not hold.
type unknownKeyError struct {
	kid    string
	reason string
}

func (e *unknownKeyError) Error() string {
	return fmt.Sprintf("the token's signing key (kid %q) is not in the key set at jwt.jwks_uri%s", e.kid, e.reason)
}

// key returns the public key of kid. A token without kid is verified by
// the key set's only key.
func (c *jwksCache) key(ctx context.Context, kid string) (any, error) {
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		if k, ok := c.lookup(kid); ok {
			c.mu.Unlock()
			return k, nil
		}
		if wait := c.inFlight; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue // look again in what it fetched
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		now := c.now()
		if attempt > 0 || !c.fetched.IsZero() && now.Sub(c.fetched) < jwksRefreshInterval {
			reason := ""
			if c.lastErr != nil {
				reason = " (its last fetch failed: " + c.lastErr.Error() + ")"
			}
			c.mu.Unlock()
			return nil, &unknownKeyError{kid: kid, reason: reason}
		}
		done := make(chan struct{})
		c.inFlight, c.fetched = done, now
		c.mu.Unlock()

		// The fetch outlives the request that started it: others wait
		// for it.
		keys, err := c.fetch(context.WithoutCancel(ctx))
		c.mu.Lock()
		if err == nil {
			c.keys = keys
		} else if c.log != nil {
			c.log.Error("JWKS fetch failed", "event", "jwt.jwks_failed", "jwks_uri", c.uri, "err", err)
		}
		c.lastErr = err
		c.inFlight = nil
		close(done)
		c.mu.Unlock()
	}
}

// lookup finds kid in the keys; c.mu is held.
func (c *jwksCache) lookup(kid string) (any, bool) {
	if kid == "" && len(c.keys) == 1 {
		for _, k := range c.keys {
			return k, true
		}
	}
	k, ok := c.keys[kid]
	return k, ok
}

func (c *jwksCache) fetch(ctx context.Context) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, oidcHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", c.uri, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("%s: the key set is larger than %d bytes", c.uri, maxJWKSBytes)
	}
	return parseJWKS(body)
}

// parseJWKS reads the RSA and ECDSA signing keys of a JSON Web Key Set;
// keys for encryption, symmetric and private keys are left out.
func parseJWKS(body []byte) (map[string]any, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("the key set is not a JSON Web Key Set: %w", err)
	}
	keys := map[string]any{}
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" || !k.Valid() {
			continue
		}
		switch pub := k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
			keys[k.KeyID] = pub
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("the key set holds no RSA or ECDSA signing key")
	}
	return keys, nil
}
