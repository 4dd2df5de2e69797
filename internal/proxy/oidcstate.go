package proxy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// oidcState is a login in progress: what the callback must find to
// finish it. It travels in the browser's state cookie, sealed (AES-GCM
// under a key every node shares), so that no node stores anything for a
// stranger and only the browser that started the login can finish it:
// the state in the callback's query must equal the cookie's, and the ID
// token's nonce the cookie's nonce. The PKCE verifier is in it too;
// sealing keeps it from anything that reads cookies without the key.
type oidcState struct {
	Prefix   string `json:"p"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Target   string `json:"t"`
	Expires  int64  `json:"e"`
}

// maxOIDCStateCookie bounds the sealed cookies openqps opens.
const maxOIDCStateCookie = 4096

func oidcAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func sealOIDCState(key []byte, st oidcState) (string, error) {
	aead, err := oidcAEAD(key)
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	sealed := aead.Seal(nonce, nonce, plain, []byte("openqps oidc state"))
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

var errOIDCState = errors.New("not a sealed login state")

func openOIDCState(key []byte, v string) (oidcState, error) {
	if len(v) > maxOIDCStateCookie {
		return oidcState{}, errOIDCState
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return oidcState{}, errOIDCState
	}
	aead, err := oidcAEAD(key)
	if err != nil {
		return oidcState{}, err
	}
	if len(raw) < aead.NonceSize()+aead.Overhead() {
		return oidcState{}, errOIDCState
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte("openqps oidc state"))
	if err != nil {
		return oidcState{}, errOIDCState
	}
	var st oidcState
	if err := json.Unmarshal(plain, &st); err != nil || st.State == "" || st.Nonce == "" || st.Verifier == "" {
		return oidcState{}, errOIDCState
	}
	return st, nil
}

// oidcStateCookieName is the state cookie of a virtual proxy; each has
// its own, so a login started at one cannot be finished at another.
func oidcStateCookieName(prefix string) string {
	if prefix == "" {
		return "openqps-oidc"
	}
	return "openqps-oidc-" + prefix
}

// oidcStateCookie is the state cookie: sent back only to the callback
// path, HttpOnly, and SameSite=Lax, which browsers still send on the
// provider's top-level redirect back.
func oidcStateCookie(rq *request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: oidcStateCookieName(rq.vp.cfg.Prefix), Value: value,
		Path:   "/" + prefixSlash(rq.vp.cfg.Prefix) + "oidcauthn",
		MaxAge: maxAge, HttpOnly: true, Secure: rq.scheme == "https", SameSite: http.SameSiteLaxMode,
	}
}

// oidcIDTokenCookieName is the cookie that keeps the ID token for the
// logout's id_token_hint.
func oidcIDTokenCookieName(prefix string) string { return oidcStateCookieName(prefix) + "-idt" }

// maxIDTokenCookie bounds the ID tokens kept in a cookie: browsers keep
// about 4 KB of one cookie, name and attributes included.
const maxIDTokenCookie = 3800

// oidcIDTokenCookie keeps the ID token for the logout's id_token_hint,
// sent back only to the browser logout (oidcLogoutPath).
func oidcIDTokenCookie(rq *request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: oidcIDTokenCookieName(rq.vp.cfg.Prefix), Value: value,
		Path:   "/" + prefixSlash(rq.vp.cfg.Prefix) + strings.TrimPrefix(oidcLogoutPath, "/"),
		MaxAge: maxAge, HttpOnly: true, Secure: rq.scheme == "https", SameSite: http.SameSiteLaxMode,
	}
}

// randomToken is 128 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// usedStates remembers the states of finished logins until they expire,
// so that a callback is valid once on this node even before the provider
// refuses its spent code. It is bounded: a stranger can mint state
// cookies at will, and when full the entry nearest to expiry gives way
// (the code it carried is spent at the provider anyway).
type usedStates struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

const maxUsedStates = 1 << 14

// spend records state as used and reports whether it was not before.
func (u *usedStates) spend(state string, expires, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.seen == nil {
		u.seen = map[string]time.Time{}
	}
	if _, dup := u.seen[state]; dup {
		return false
	}
	if len(u.seen) >= maxUsedStates {
		var oldest string
		var at time.Time
		for s, e := range u.seen {
			if !e.After(now) {
				delete(u.seen, s)
				continue
			}
			if oldest == "" || e.Before(at) {
				oldest, at = s, e
			}
		}
		if len(u.seen) >= maxUsedStates {
			delete(u.seen, oldest)
		}
	}
	u.seen[state] = expires
	return true
}

// callbackQuery is what the provider sends back to /<prefix>/oidcauthn.
type callbackQuery struct {
	Code, State, Issuer, Error, ErrorDescription string
}

// maxCallbackQuery bounds the callback's query: a code and a state are
// far shorter, and an error description a few hundred bytes.
const maxCallbackQuery = 8 << 10

// parseCallbackQuery reads the callback's parameters; each may be given
// once (two states or codes are a confusion attack, not a provider).
func parseCallbackQuery(raw string) (callbackQuery, error) {
	var q callbackQuery
	if len(raw) > maxCallbackQuery {
		return q, fmt.Errorf("the callback's query is longer than %d bytes", maxCallbackQuery)
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return q, errors.New("the callback's query is not URL-encoded")
	}
	get := func(name string) (string, error) {
		v := values[name]
		switch {
		case len(v) > 1:
			return "", fmt.Errorf("the callback has %d %s parameters; a provider sends one", len(v), name)
		case len(v) == 0:
			return "", nil
		}
		if strings.IndexFunc(v[0], func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			return "", fmt.Errorf("the callback's %s contains a control character", name)
		}
		return v[0], nil
	}
	for _, f := range []struct {
		name string
		to   *string
	}{{"code", &q.Code}, {"state", &q.State}, {"iss", &q.Issuer}, {"error", &q.Error}, {"error_description", &q.ErrorDescription}} {
		if *f.to, err = get(f.name); err != nil {
			return callbackQuery{}, err
		}
	}
	if q.State == "" && q.Error == "" {
		return q, errors.New("the callback has no state parameter")
	}
	return q, nil
}
