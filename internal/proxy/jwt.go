package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// maxTokenBytes bounds the bearer tokens openqps parses.
const maxTokenBytes = 16 << 10

// jwtLogin verifies a bearer token (Authorization: Bearer <JWT>) with the
// virtual proxy's key and authenticates the request as the user its
// claims name. A request without a bearer token is left alone (its cookie
// may do); a bad token is refused with 401 and the reason, even next to a
// valid cookie, because the caller explicitly claimed to be someone.
type jwtLogin struct {
	p *Proxy
	// keys is the key set of jwt.jwks_uri (jwks.go), nil with a PEM key.
	keys *jwksCache
}

func newJWTLogin(p *Proxy, vp *virtualProxy) (loginMethod, error) {
	j := jwtLogin{p: p}
	if uri := vp.cfg.Auth.JWT.JWKSURI; uri != "" {
		j.keys = newJWKSCache(uri, p.opts.Now, p.log)
	}
	return j, nil
}

// takeCredential takes the bearer token from the request, whatever else
// authenticates it: the token is openqps's credential, not the back
// end's, which gets the user in X-Qlik-User. jwt.forward_token leaves it
// in.
func (jwtLogin) takeCredential(rq *request) {
	token, found := bearerToken(rq.r.Header)
	if found && !rq.vp.cfg.Auth.JWT.ForwardToken {
		rq.r.Header.Del("Authorization")
	}
	rq.credential, rq.credentialFound = token, found
}

func (j jwtLogin) login(rq *request, known verdict) (verdict, error) {
	j.p.claimCredentialSession(known)
	if !rq.credentialFound {
		return verdict{}, nil
	}
	token := rq.credential
	var keyFor func(kid string) (any, error)
	if j.keys != nil {
		keyFor = func(kid string) (any, error) { return j.keys.key(rq.r.Context(), kid) }
	}
	dir, user, attrs, err := verifyJWT(&rq.vp.cfg.Auth.JWT, keyFor, token, j.p.opts.Now)
	if err != nil {
		v := refusal(http.StatusUnauthorized, "invalid token", err.Error())
		v.challenge = `Bearer error="invalid_token"`
		return v, nil
	}
	// The credential is the signed part of the token, without its
	// signature: an ECDSA signature has two valid forms, (r, s) and
	// (r, n-s), and both must name the same login (see checkLowS).
	signed := token[:strings.LastIndexByte(token, '.')]
	return j.p.useIdentity(rq, known, dir, user, "jwt\x00"+signed, attrs)
}

// bearerToken returns the token of an Authorization: Bearer header.
func bearerToken(h http.Header) (string, bool) {
	v := strings.TrimSpace(h.Get("Authorization"))
	if strings.EqualFold(v, "Bearer") {
		return "", true
	}
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// jwtAlgorithms are the signing algorithms a key verifies: RS256/384/512
// for an RSA key, the one ES algorithm of an ECDSA key's curve.
func jwtAlgorithms(key any) []string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512"}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}
		case elliptic.P384():
			return []string{"ES384"}
		case elliptic.P521():
			return []string{"ES512"}
		}
	}
	return nil
}

// verifyJWT checks a token's signature, expiry (required), lifetime,
// issue time and audience (when configured) and reads the user from its
// claims. Its errors say what is wrong in words a token issuer can act
// on. keyFor, when not nil, gives the key of the token's kid (a JWKS);
// otherwise c.Key verifies every token.
func verifyJWT(c *config.JWT, keyFor func(kid string) (any, error), token string, now func() time.Time) (dir, user string, attrs []session.Attribute, err error) {
	if token == "" || len(token) > maxTokenBytes {
		return "", "", nil, fmt.Errorf("the bearer token is empty or longer than %d bytes", maxTokenBytes)
	}
	key := c.Key
	algs := jwtAlgorithms(key)
	opts := []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithTimeFunc(now)}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.NewParser(opts...).ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if keyFor != nil {
			kid, _ := t.Header["kid"].(string)
			k, err := keyFor(kid)
			if err != nil {
				return nil, err
			}
			key, algs = k, jwtAlgorithms(k)
		}
		if !slices.Contains(algs, t.Method.Alg()) {
			return nil, errAlgorithm
		}
		return key, nil
	})
	var unknown *unknownKeyError
	if errors.As(err, &unknown) {
		return "", "", nil, unknown
	}
	if err != nil {
		return "", "", nil, jwtReason(err, c, algs, claims)
	}
	if err := checkJWTHeader(parsed.Header); err != nil {
		return "", "", nil, err
	}
	if c.RequireLowS {
		if err := checkLowS(key, parsed.Signature); err != nil {
			return "", "", nil, err
		}
	}
	if err := checkJWTLifetime(claims, c.MaxLifetime, now()); err != nil {
		return "", "", nil, err
	}
	if user, err = stringClaim(claims, c.UserIDClaim); err != nil {
		return "", "", nil, err
	}
	if d, ok := strings.CutPrefix(c.UserDirectoryClaim, "["); ok {
		dir = strings.TrimSuffix(d, "]")
	} else if dir, err = stringClaim(claims, c.UserDirectoryClaim); err != nil {
		return "", "", nil, err
	}
	if dir, err = cleanIdentity("user directory", "token", dir); err != nil {
		return "", "", nil, err
	}
	if user, err = cleanIdentity("user id", "token", user); err != nil {
		return "", "", nil, err
	}
	attrs, err = jwtAttributes(claims, c.AttributeClaims)
	return dir, user, attrs, err
}

// checkJWTHeader refuses a token whose header has a crit parameter: it
// lists extensions the verifier must understand, and openqps understands
// none (RFC 7515, section 4.1.11).
func checkJWTHeader(h map[string]any) error {
	crit, ok := h["crit"]
	if !ok {
		return nil
	}
	return fmt.Errorf("the token's header has crit %v: openqps implements no JWS extension and must refuse tokens that require one (RFC 7515, 4.1.11); issue the token without crit", crit)
}

// checkLowS refuses an ECDSA signature whose s is in the upper half of
// the curve order (jwt.require_low_s). (r, n-s) verifies whenever (r, s)
// does, so anyone holding a token can make a second, different token
// with the same claims. It is not the default because most signers do
// not normalise s (Go's crypto/ecdsa, hence golang-jwt, and OpenSSL give
// a high s about half the time), and the JWS specification does not ask
// them to; openqps itself never tells the two forms apart (the
// credential of a login is the token without its signature).
func checkLowS(key any, sig []byte) error {
	k, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return nil
	}
	n := k.Curve.Params().N
	size := (n.BitLen() + 7) / 8
	if len(sig) != 2*size {
		return nil // the library verified it: cannot happen
	}
	s := new(big.Int).SetBytes(sig[size:])
	if s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		return errors.New("the token's ECDSA signature has a high s value (above half the curve order), a malleable form openqps refuses: sign with the canonical low-s form")
	}
	return nil
}

// jwtClockSkew is how far the issuer's clock may run ahead of openqps's
// for an iat: clocks of different hosts differ by seconds, not minutes.
const jwtClockSkew = time.Minute

// checkJWTLifetime refuses a token issued in the future (beyond
// jwtClockSkew) or valid for longer than maxLifetime, counted from now
// and, when it has one, from its iat. The library has checked that exp is
// present, a number and not past.
func checkJWTLifetime(claims jwt.MapClaims, maxLifetime time.Duration, now time.Time) error {
	if maxLifetime <= 0 {
		maxLifetime = config.DefaultJWTMaxLifetime
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return errors.New("the token's exp claim is not a number")
	}
	iat, err := claims.GetIssuedAt()
	if err != nil {
		return errors.New("the token's iat claim is not a number")
	}
	if iat != nil {
		if iat.After(now.Add(jwtClockSkew)) {
			return fmt.Errorf("the token's iat (issued at) is %s in the future: openqps accepts at most %s of clock difference; check the issuer's clock", iat.Sub(now).Round(time.Second), jwtClockSkew)
		}
		if life := exp.Sub(iat.Time); life > maxLifetime {
			return fmt.Errorf("the token is valid for %s (exp - iat), longer than jwt.max_lifetime %s: issue shorter-lived tokens or raise max_lifetime", life.Round(time.Second), maxLifetime)
		}
	}
	if left := exp.Sub(now); left > maxLifetime+jwtClockSkew {
		return fmt.Errorf("the token expires in %s, later than jwt.max_lifetime %s from now: issue shorter-lived tokens or raise max_lifetime", left.Round(time.Second), maxLifetime)
	}
	return nil
}

// errAlgorithm: the token's alg is not one the configured key verifies.
var errAlgorithm = errors.New("algorithm not accepted")

// jwtReason turns the JWT library's error into a reason for the caller.
func jwtReason(err error, c *config.JWT, algs []string, claims jwt.MapClaims) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errors.New("the bearer token is not a well-formed JWT (three base64url parts separated by dots)")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// An alg we refuse (none, HS256, ...) or one the library does not
		// know.
		return fmt.Errorf("the token's signing algorithm is not accepted: the configured key verifies %s only", strings.Join(algs, ", "))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errors.New("the token's signature does not verify with the configured public key: it was signed by an unknown key")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && claims["exp"] == nil:
		return errors.New("the token has no exp (expiry) claim; openqps accepts only tokens that expire")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("wrong audience: the token has no aud claim; it must include %q", c.Audience)
	case errors.Is(err, jwt.ErrTokenExpired):
		return errors.New("the token has expired (exp is in the past)")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("wrong audience: the token's aud does not include %q", c.Audience)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errors.New("the token is not valid yet (nbf or iat is in the future)")
	}
	return fmt.Errorf("the token is invalid: %v", err)
}

// stringClaim reads a required claim holding a string.
func stringClaim(claims jwt.MapClaims, name string) (string, error) {
	v, ok := claims[name]
	if !ok {
		return "", fmt.Errorf("the token has no %q claim (the configured claim for the user)", name)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("the token's %q claim is not a string", name)
	}
	return s, nil
}

// jwtAttributes maps configured claims to session attributes, in claim
// name order so X-Qlik-Security is stable. A list claim gives one
// attribute per element; absent claims give none.
func jwtAttributes(claims jwt.MapClaims, mapping map[string]string) ([]session.Attribute, error) {
	names := make([]string, 0, len(mapping))
	for name := range mapping {
		names = append(names, name)
	}
	sort.Strings(names)
	var attrs []session.Attribute
	add := func(claim, key string, v any) error {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case float64, bool:
			s = fmt.Sprint(v)
		default:
			return fmt.Errorf("the token's %q claim holds a %T; attribute claims must be strings, numbers, booleans or lists of them", claim, v)
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("the token's %q claim contains a control character", claim)
			}
		}
		attrs = append(attrs, session.Attribute{Key: key, Value: s})
		return nil
	}
	for _, name := range names {
		switch v := claims[name].(type) {
		case nil:
		case []any:
			for _, e := range v {
				if err := add(name, mapping[name], e); err != nil {
					return nil, err
				}
			}
		default:
			if err := add(name, mapping[name], v); err != nil {
				return nil, err
			}
		}
	}
	return attrs, nil
}
