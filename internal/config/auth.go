package config

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Auth configures how a virtual proxy authenticates browsers besides a
// session cookie. The zero value is QPS's default: ticket/session login
// through the authentication module.
type Auth struct {
	// AuthenticationMethod: ticket (default), header_static,
	// header_dynamic or jwt.
	AuthenticationMethod string `yaml:"authentication_method"`
	// HeaderName is the header carrying the user for header
	// authentication; only safe behind a trusted front that sets it.
	HeaderName string `yaml:"header_name"`
	// StaticUserDirectory is the directory of header_static users.
	StaticUserDirectory string `yaml:"static_user_directory"`
	// DynamicUserDirectory is the pattern of header_dynamic values,
	// e.g. `$ud\$id`.
	DynamicUserDirectory string `yaml:"dynamic_user_directory"`
	// AnonymousAccess: none (default), allow or always.
	AnonymousAccess string `yaml:"anonymous_access"`
	// JWT configures authentication_method jwt.
	JWT JWT `yaml:"jwt"`
	// OIDC configures authentication_method oidc (oidc.go).
	OIDC OIDC `yaml:"oidc"`
	// SAML configures authentication_method saml (saml.go).
	SAML SAML `yaml:"saml"`
	// Windows configures authentication_method windows (windows.go).
	Windows Windows `yaml:"windows"`
}

// Authentication methods and anonymous access modes.
const (
	AuthTicket        = "ticket"
	AuthHeaderStatic  = "header_static"
	AuthHeaderDynamic = "header_dynamic"
	AuthJWT           = "jwt"

	AnonymousNone   = "none"
	AnonymousAllow  = "allow"
	AnonymousAlways = "always"
)

// JWT configures JSON Web Token authentication.
type JWT struct {
	// PublicKey is a PEM file with the certificate or public key that
	// signs the tokens (RSA or ECDSA).
	PublicKey string `yaml:"public_key"`
	// JWKSURI, instead of PublicKey, is the issuer's JSON Web Key Set
	// (https, or http on a loopback address): keys are fetched when
	// needed, by kid, and again for an unknown kid (at most once a
	// second), so a rotated key is picked up without a restart.
	JWKSURI string `yaml:"jwks_uri"`
	// UserIDClaim names the claim holding the user id (default userId).
	UserIDClaim string `yaml:"user_id_claim"`
	// UserDirectoryClaim names the claim holding the user directory
	// (default userDirectory); a value in brackets, e.g. "[ACME]", is a
	// constant directory for every token.
	UserDirectoryClaim string `yaml:"user_directory_claim"`
	// AttributeClaims maps claim names to session attribute names, e.g.
	// {groups: Group}; a claim holding a list gives one attribute each.
	AttributeClaims map[string]string `yaml:"attribute_claims"`
	// Audience, when set, must be one of the token's aud values.
	Audience string `yaml:"audience"`
	// MaxLifetime is the longest a token may be valid: openqps refuses a
	// token whose exp is further than this from now, or from its iat
	// (default DefaultJWTMaxLifetime).
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// ForwardToken passes the Authorization: Bearer header on to the back
	// ends; by default openqps removes it, as it does every credential it
	// consumed, so that back ends (and their logs) never hold a token
	// that logs anyone in as the user.
	ForwardToken bool `yaml:"forward_token"`
	// RequireLowS refuses ECDSA signatures in the high-s form, for
	// issuers that always sign low-s (the two forms of one signature
	// both verify). Off by default: most signers give a high s half of
	// the time.
	RequireLowS bool `yaml:"require_low_s"`

	// Key is the parsed PublicKey (*rsa.PublicKey or *ecdsa.PublicKey),
	// filled in by validation.
	Key any `yaml:"-"`
}

// Defaults of the JWT claim names, as Qlik's examples name them.
const (
	DefaultJWTUserIDClaim        = "userId"
	DefaultJWTUserDirectoryClaim = "userDirectory"
)

// DefaultJWTMaxLifetime is the default of jwt.max_lifetime. A bearer
// token cannot be revoked: whoever holds a copy logs in as its user until
// it expires, so the bound is what limits a leaked token. Identity
// providers issue access tokens for minutes to an hour; a day leaves
// room for the longer-lived tokens that service scripts are given while
// refusing the never-expiring ones (exp in the year 9999) that turn a
// token into a password.
const DefaultJWTMaxLifetime = 24 * time.Hour

// auth fills the defaults of a virtual proxy's authentication settings
// and validates them.
func (v *validator) auth(at string, vp *VirtualProxy) {
	a := &vp.Auth
	if a.AuthenticationMethod == "" {
		a.AuthenticationMethod = AuthTicket
	}
	if a.AnonymousAccess == "" {
		a.AnonymousAccess = AnonymousNone
	}
	switch a.AnonymousAccess {
	case AnonymousNone, AnonymousAllow, AnonymousAlways:
	default:
		v.fail(at+".anonymous_access", fmt.Sprintf("%q: use none, allow or always", a.AnonymousAccess))
	}
	switch a.AuthenticationMethod {
	case AuthTicket:
	case AuthHeaderStatic, AuthHeaderDynamic:
		v.headerAuth(at, a)
	case AuthJWT:
		v.jwtAuth(at, &a.JWT)
	case AuthOIDC:
		v.oidcAuth(at, vp)
	case AuthSAML:
		v.samlAuth(at, vp)
	case AuthWindows:
		v.windowsAuth(at, &a.Windows)
	default:
		v.fail(at+".authentication_method", fmt.Sprintf("%q: use ticket, header_static, header_dynamic, jwt, oidc, saml or windows", a.AuthenticationMethod))
	}
}

func (v *validator) headerAuth(at string, a *Auth) {
	switch name := a.HeaderName; {
	case name == "":
		v.fail(at+".header_name", fmt.Sprintf("%s needs the header that carries the user, e.g. header_name: X-Remote-User", a.AuthenticationMethod))
	case !validHeaderName(name):
		v.fail(at+".header_name", fmt.Sprintf("%q is not a valid header name", name))
	case len(name) >= 7 && strings.EqualFold(name[:7], "X-Qlik-"):
		v.fail(at+".header_name", fmt.Sprintf("%q: X-Qlik-* headers are reserved (openqps sets them for the back ends); choose another, e.g. X-Remote-User", name))
	case strings.EqualFold(name, "Cookie") || strings.EqualFold(name, "Authorization") || strings.EqualFold(name, "Host"):
		v.fail(at+".header_name", fmt.Sprintf("%q cannot carry a user name; choose another, e.g. X-Remote-User", name))
	}
	if a.AuthenticationMethod == AuthHeaderStatic {
		if d := a.StaticUserDirectory; strings.TrimSpace(d) == "" || strings.ContainsRune(d, '\\') {
			v.fail(at+".static_user_directory", "header_static needs the directory of its users (not blank, no backslash), e.g. static_user_directory: ACME")
		}
		return
	}
	if _, err := ParseUserPattern(a.DynamicUserDirectory); err != nil {
		v.fail(at+".dynamic_user_directory", err.Error())
	}
}

// UserPattern is a parsed dynamic_user_directory pattern such as
// `$ud\$id`: the header value is Prefix, one of the two parts, Separator,
// the other part, Suffix.
type UserPattern struct {
	Prefix, Separator, Suffix string
	// DirectoryFirst is true when $ud comes before $id.
	DirectoryFirst bool
}

// ParseUserPattern parses a dynamic_user_directory pattern: $ud and $id
// once each, with literal text between them.
func ParseUserPattern(pattern string) (UserPattern, error) {
	const hint = "write the header value's form with $ud (directory) and $id (user id) once each and a separator between them, e.g. `$ud\\$id` for DOMAIN\\user"
	ud, id := strings.Index(pattern, "$ud"), strings.Index(pattern, "$id")
	if ud < 0 || id < 0 || strings.Count(pattern, "$ud") != 1 || strings.Count(pattern, "$id") != 1 {
		return UserPattern{}, fmt.Errorf("%q: %s", pattern, hint)
	}
	p := UserPattern{DirectoryFirst: ud < id}
	first, second := min(ud, id), max(ud, id)
	p.Prefix = pattern[:first]
	p.Separator = pattern[first+3 : second]
	p.Suffix = pattern[second+3:]
	if p.Separator == "" {
		return UserPattern{}, fmt.Errorf("%q has nothing between $ud and $id: %s", pattern, hint)
	}
	return p, nil
}

func (v *validator) jwtAuth(at string, j *JWT) {
	if j.UserIDClaim == "" {
		j.UserIDClaim = DefaultJWTUserIDClaim
	}
	if j.UserDirectoryClaim == "" {
		j.UserDirectoryClaim = DefaultJWTUserDirectoryClaim
	}
	if d, ok := strings.CutPrefix(j.UserDirectoryClaim, "["); ok {
		if d, ok = strings.CutSuffix(d, "]"); !ok || strings.TrimSpace(d) == "" || strings.ContainsRune(d, '\\') {
			v.fail(at+".jwt.user_directory_claim", fmt.Sprintf("%q: a constant directory is written in brackets, e.g. \"[ACME]\"", j.UserDirectoryClaim))
		}
	}
	switch {
	case j.MaxLifetime == 0:
		j.MaxLifetime = DefaultJWTMaxLifetime
	case j.MaxLifetime < time.Minute:
		v.fail(at+".jwt.max_lifetime", fmt.Sprintf("%s: the longest lifetime of an accepted token must be a minute or more, e.g. max_lifetime: 1h", j.MaxLifetime))
	}
	for claim, attr := range j.AttributeClaims {
		if claim == "" || strings.TrimSpace(attr) == "" {
			v.fail(at+".jwt.attribute_claims", fmt.Sprintf("%q: %q: map a claim name to an attribute name, e.g. {groups: Group}", claim, attr))
		}
	}
	switch {
	case j.JWKSURI != "" && j.PublicKey != "":
		v.fail(at+".jwt.jwks_uri", "give the verifying keys once: public_key (a PEM file) or jwks_uri (the issuer's key set), not both")
		return
	case j.JWKSURI != "":
		if err := checkJWKSURI(j.JWKSURI); err != nil {
			v.fail(at+".jwt.jwks_uri", err.Error())
		}
		return
	case j.PublicKey == "":
		v.fail(at+".jwt.public_key", "jwt needs the PEM certificate or public key that verifies the tokens, e.g. public_key: /etc/openqps/jwt.pem, or the issuer's key set, e.g. jwks_uri: https://idp.example.com/.well-known/jwks.json")
		return
	}
	key, err := LoadJWTKey(j.PublicKey)
	if err != nil {
		v.fail(at+".jwt.public_key", err.Error())
		return
	}
	j.Key = key
}

// checkJWKSURI accepts an https URL, or http on a loopback address: keys
// fetched in clear over a network could be anyone's.
func checkJWKSURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q: give the https URL of the issuer's JSON Web Key Set", raw)
	}
	if u.Scheme == "http" {
		if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
			return fmt.Errorf("%q: a key set fetched over plain http could be anyone's; use https (http only on a loopback address)", raw)
		}
	}
	return nil
}

// LoadJWTKey reads the first usable PEM block of path: a certificate, a
// PKIX public key or a PKCS#1 RSA public key, RSA or ECDSA.
func LoadJWTKey(path string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, errors.Unwrap(err))
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%s holds no PEM CERTIFICATE or PUBLIC KEY block", path)
		}
		var key any
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: certificate: %w", path, err)
			}
			key = cert.PublicKey
		case "PUBLIC KEY":
			if key, err = x509.ParsePKIXPublicKey(block.Bytes); err != nil {
				return nil, fmt.Errorf("%s: public key: %w", path, err)
			}
		case "RSA PUBLIC KEY":
			if key, err = x509.ParsePKCS1PublicKey(block.Bytes); err != nil {
				return nil, fmt.Errorf("%s: RSA public key: %w", path, err)
			}
		default:
			continue
		}
		switch key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
			return key, nil
		}
		return nil, fmt.Errorf("%s: a %T cannot verify RS256/384/512 or ES256/384/512 tokens; use an RSA or ECDSA key", path, key)
	}
}
