package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// OpenID Connect login (authentication_method oidc), as QPS's OIDC
// virtual proxies do it: a browser without a session is sent to the
// virtual proxy's provider (authorization code flow, PKCE S256, state and
// nonce), which sends it back to /<prefix>/oidcauthn; openqps exchanges
// the code, verifies the ID token (go-oidc: signature by a key of the
// provider's JWKS with an algorithm it announces, issuer, audience,
// expiry; here: nonce, azp) and creates a session as for any login.
//
// The login in progress lives in the browser only, in a sealed cookie
// (oidcstate.go): sending strangers to the provider stores nothing.

// oidcLogin is the login method of an OIDC virtual proxy. Its
// provider lives on the Proxy (oidcProviders), across reloads.
type oidcLogin struct {
	p *Proxy
}

func newOIDCLogin(p *Proxy, _ *virtualProxy) (loginMethod, error) { return &oidcLogin{p: p}, nil }

// login serves the callback, and sends a browser navigation without a
// session to the provider. Anything else is left to challenge (401 with
// a hint).
func (m *oidcLogin) login(rq *request, known verdict) (verdict, error) {
	switch rq.path {
	case config.OIDCCallbackPath:
		return m.callback(rq)
	case oidcLogoutPath:
		return m.logout(rq, known)
	}
	navigation := (rq.r.Method == http.MethodGet || rq.r.Method == http.MethodHead) && !isUpgrade(rq.r)
	if known.kind == identified || !navigation || strings.HasPrefix(rq.path, "/qps/") || rq.path == "/qps" {
		return verdict{}, nil
	}
	return m.start(rq)
}

// start answers a navigation with a redirect to the provider's
// authorization endpoint, and sets the sealed state cookie that the
// callback needs to finish the login.
func (m *oidcLogin) start(rq *request) (verdict, error) {
	p, vp := m.p, rq.vp
	if !rq.routes.addressAllowed(rq.scheme, rq.r.Host, vp) {
		return refusal(http.StatusBadRequest, "unknown host", fmt.Sprintf("Host %q is not an address of this proxy: use %s", rq.r.Host, rq.routes.addressHint(rq.scheme))), nil
	}
	rp := p.oidc.ready(vp.cfg.Prefix)
	if rp == nil {
		return oidcUnreachable(vp), nil
	}
	target, err := p.loginTarget(rq)
	if err != nil {
		return refusal(http.StatusBadRequest, "reloadUri not allowed", err.Error()), nil
	}
	if len(target) > session.MaxTargetURI {
		return refusal(http.StatusRequestURITooLong, "URL too long to log in with",
			fmt.Sprintf("the login keeps the URL to return to, at most %d bytes; this one has %d: shorten it", session.MaxTargetURI, len(target))), nil
	}
	key, err := p.oidcKey(rq)
	if err != nil {
		return verdict{}, err
	}
	st := oidcState{
		Prefix: vp.cfg.Prefix, State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(),
		Target: target, Expires: p.opts.Now().Add(oidcLoginTTL).Unix(),
	}
	sealed, err := sealOIDCState(key, st)
	if err != nil {
		return verdict{}, err
	}
	http.SetCookie(rq.w, oidcStateCookie(rq, sealed, int(oidcLoginTTL/time.Second)))
	p.log.Debug("sent to identity provider", "event", "oidc.login_started", "vp", vp.cfg.Prefix)
	return redirect(rp.oauth2Config(p.oidcRedirectURL(rq)).AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier))), nil
}

// oidcLoginTTL is how long a browser may take at the provider (typing a
// password, a second factor) before the login must start over.
const oidcLoginTTL = 10 * time.Minute

// oidcRedirectURL is the virtual proxy's callback as the provider's
// client lists it: https://host/<prefix>/oidcauthn.
func (p *Proxy) oidcRedirectURL(rq *request) string {
	base := rq.scheme + "://" + rq.r.Host
	if pub := rq.routes.cfg.Frontend.PublicURL; pub != "" {
		base = strings.TrimSuffix(pub, "/")
	}
	return base + "/" + prefixSlash(rq.vp.cfg.Prefix) + strings.TrimPrefix(config.OIDCCallbackPath, "/")
}

// callback finishes a login: the browser comes back from the provider
// with a code (or an error) and the state cookie set when the login
// started. Every refusal is an answer of its own (a page or JSON with the
// reason and where to start again), never a redirect to the provider: a
// broken callback must not loop.
func (m *oidcLogin) callback(rq *request) (verdict, error) {
	p, vp := m.p, rq.vp
	if rq.r.Method != http.MethodGet {
		return refusal(http.StatusMethodNotAllowed, "method not allowed", "the OpenID Connect callback takes GET (response_mode query)"), nil
	}
	q, err := parseCallbackQuery(rq.r.URL.RawQuery)
	if err != nil {
		return refusal(http.StatusBadRequest, "invalid login callback", err.Error()), nil
	}
	key, err := p.oidcKey(rq)
	if err != nil {
		return verdict{}, err
	}
	// The state cookie is spent whatever happens next.
	http.SetCookie(rq.w, oidcStateCookie(rq, "", -1))
	st, why := p.oidcStateOf(rq, key)
	retry := p.vpHome(rq)
	if why == "" {
		retry = st.Target // checked as this proxy's when the login began
	}
	again := " To log in again, open " + retry + "."
	if q.Error != "" {
		msg := q.Error
		if q.ErrorDescription != "" {
			msg += ": " + q.ErrorDescription
		}
		return p.loggedRefusal(rq, refusal(http.StatusForbidden, "login refused by the identity provider", "the identity provider answered "+msg+"."+again), retry), nil
	}
	switch {
	case why != "":
		return p.loggedRefusal(rq, refusal(http.StatusBadRequest, "no login in progress", why+"."+again), retry), nil
	case !constantTimeEqual(q.State, st.State):
		return p.loggedRefusal(rq, refusal(http.StatusBadRequest, "no login in progress", "the callback's state does not match the login this browser started."+again), retry), nil
	case q.Code == "":
		return p.loggedRefusal(rq, refusal(http.StatusBadRequest, "invalid login callback", "the callback has no code: the identity provider must answer with response_type code."+again), retry), nil
	}
	if q.Issuer != "" && strings.TrimSuffix(q.Issuer, "/") != strings.TrimSuffix(vp.cfg.Auth.OIDC.Issuer, "/") {
		// RFC 9207: the code comes from another provider (a mix-up).
		return p.loggedRefusal(rq, refusal(http.StatusBadRequest, "login from another identity provider", fmt.Sprintf("the callback names the issuer %q; this virtual proxy logs in at %q.", q.Issuer, vp.cfg.Auth.OIDC.Issuer)+again), retry), nil
	}
	rp := p.oidc.ready(vp.cfg.Prefix)
	if rp == nil {
		return oidcUnreachable(vp), nil
	}
	if !p.oidc.used.spend(st.State, time.Unix(st.Expires, 0), p.opts.Now()) {
		return p.loggedRefusal(rq, refusal(http.StatusBadRequest, "no login in progress", "this login was already completed; a login callback is valid once."+again), retry), nil
	}
	dir, user, attrs, rawID, err := rp.finish(rq.r.Context(), p.oidcRedirectURL(rq), q.Code, st)
	if err != nil {
		var failure *oidcFailure
		if errors.As(err, &failure) {
			return p.loggedRefusal(rq, refusal(failure.status, failure.msg, failure.detail+again), retry), nil
		}
		return verdict{}, err
	}
	s, err := p.startSession(rq, dir, user, attrs)
	if err != nil {
		return verdict{}, fmt.Errorf("add session for OpenID Connect login: %w", err)
	}
	if vp.cfg.Auth.OIDC.EndSession && len(rawID) <= maxIDTokenCookie {
		// Kept for the logout's id_token_hint. Larger tokens (Entra ID
		// with many groups) would exceed what browsers keep of a cookie:
		// the logout then goes without the hint, and the provider asks.
		http.SetCookie(rq.w, oidcIDTokenCookie(rq, rawID, 0))
	}
	p.log.Info("user authenticated", "event", "auth.login", "method", config.AuthOIDC, "vp", vp.cfg.Prefix,
		"user_directory", dir, "user_id", user, "session", session.Redact(s.ID), "remote", rq.r.RemoteAddr)
	return redirect(st.Target), nil
}

// oidcLogoutPath is the browser logout of OIDC virtual proxies: a
// navigation (the personal API's DELETE /qps/user answers scripts, which
// cannot follow the browser to the provider).
const oidcLogoutPath = "/qps/logout"

// logout ends the browser's session and sends it to the provider's
// end_session_endpoint (RP-initiated logout, with id_token_hint when the
// ID token was small enough to keep) when oidc.end_session is set and the
// provider has one; otherwise back to the virtual proxy's root, which
// logs in again.
func (m *oidcLogin) logout(rq *request, known verdict) (verdict, error) {
	p, vp := m.p, rq.vp
	if rq.r.Method != http.MethodGet {
		return refusal(http.StatusMethodNotAllowed, "method not allowed", "open /"+prefixSlash(vp.cfg.Prefix)+"qps/logout in the browser; scripts log out with DELETE /"+prefixSlash(vp.cfg.Prefix)+"qps/user"), nil
	}
	if known.kind == identified && !known.anonymous {
		s := known.session
		if _, err := p.store.Delete(rq.r.Context(), s.Prefix, s.ID); err != nil && !errors.Is(err, session.ErrNotFound) {
			return verdict{}, err
		}
		p.log.Info("user logged out", "event", "session.logged_out", "vp", s.Prefix,
			"user_directory", s.UserDirectory, "user_id", s.UserID, "session", session.Redact(s.ID))
	}
	vp.clearCookie(rq)
	home := p.vpHome(rq)
	rp := p.oidc.ready(vp.cfg.Prefix)
	if !vp.cfg.Auth.OIDC.EndSession || rp == nil || rp.endSession == "" {
		return redirect(home), nil
	}
	http.SetCookie(rq.w, oidcIDTokenCookie(rq, "", -1))
	q := url.Values{"client_id": {vp.cfg.Auth.OIDC.ClientID}, "post_logout_redirect_uri": {home}}
	var hint string
	cookieValues(rq.r.Header["Cookie"], oidcIDTokenCookieName(vp.cfg.Prefix), func(v string) bool { hint = v; return true })
	if hint != "" {
		q.Set("id_token_hint", hint)
	}
	sep := "?"
	if strings.Contains(rp.endSession, "?") {
		sep = "&"
	}
	return redirect(rp.endSession + sep + q.Encode()), nil
}

// vpHome is the virtual proxy's root on this proxy.
func (p *Proxy) vpHome(rq *request) string {
	base := rq.scheme + "://" + rq.r.Host
	if pub := rq.routes.cfg.Frontend.PublicURL; pub != "" {
		base = strings.TrimSuffix(pub, "/")
	}
	return base + "/" + prefixSlash(rq.vp.cfg.Prefix)
}

// oidcStateOf opens the request's state cookie; why says what is wrong
// when there is no usable one.
func (p *Proxy) oidcStateOf(rq *request, key []byte) (st oidcState, why string) {
	name := oidcStateCookieName(rq.vp.cfg.Prefix)
	seen := false
	var found bool
	cookieValues(rq.r.Header["Cookie"], name, func(v string) bool {
		seen = true
		s, err := openOIDCState(key, v)
		if err != nil || s.Prefix != rq.vp.cfg.Prefix {
			return false
		}
		st, found = s, true
		return true
	})
	switch {
	case !seen:
		return st, "this browser has no login in progress here (no " + name + " cookie): it started at another virtual proxy, in another browser, or cookies are blocked"
	case !found:
		return st, "the login state cookie is not one openqps sealed for this virtual proxy"
	case p.opts.Now().After(time.Unix(st.Expires, 0)):
		return st, fmt.Sprintf("the login took longer than %s", oidcLoginTTL)
	}
	return st, ""
}

// oidcFailure is a login the provider's answer does not complete.
type oidcFailure struct {
	status      int
	msg, detail string
}

func (e *oidcFailure) Error() string { return e.msg + ": " + e.detail }

func failure(status int, msg, detail string) error {
	return &oidcFailure{status: status, msg: msg, detail: detail}
}

// loggedRefusal logs a failed login once as this method's event (the
// handler logs the answer) and returns its verdict.
func (p *Proxy) loggedRefusal(rq *request, v verdict, retry string) verdict {
	v.retry = retry
	p.log.Info("login not completed", "event", "oidc.login_refused", "status", v.status, "vp", rq.vp.cfg.Prefix,
		"error", v.error, "remote", rq.r.RemoteAddr)
	return v
}

func oidcUnreachable(vp *virtualProxy) verdict {
	return refusal(http.StatusServiceUnavailable, "identity provider unreachable",
		fmt.Sprintf("openqps cannot read the discovery document of virtual proxy %q's identity provider (%s); it keeps trying: retry shortly", vp.cfg.Prefix, vp.cfg.Auth.OIDC.MetadataURI))
}

// oidcKey is the key that seals state cookies, the same on every node.
func (p *Proxy) oidcKey(rq *request) ([]byte, error) {
	secret, err := p.store.Secret(rq.r.Context(), oidcStateSecret)
	if err != nil {
		return nil, fmt.Errorf("key of OpenID Connect login state: %w", err)
	}
	k := sha256.Sum256(secret)
	return k[:], nil
}

// oidcStateSecret names the store secret of state cookies.
const oidcStateSecret = "oidc-state"

// oidcProviders holds the provider of every OIDC virtual proxy, across
// reloads. It is safe for concurrent use.
type oidcProviders struct {
	mu   sync.Mutex
	byVP map[string]*oidcProvider // by prefix
	used usedStates
}

// configure starts a provider for each OIDC virtual proxy of cfg whose
// settings changed, keeps the others, and stops those no longer
// configured.
func (o *oidcProviders) configure(p *Proxy, cfg *config.Config) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byVP == nil {
		o.byVP = map[string]*oidcProvider{}
	}
	keep := map[string]bool{}
	for i := range cfg.VirtualProxies {
		vp := &cfg.VirtualProxies[i]
		if vp.Auth.AuthenticationMethod != config.AuthOIDC {
			continue
		}
		keep[vp.Prefix] = true
		if old := o.byVP[vp.Prefix]; old != nil && old.sameSettings(&vp.Auth.OIDC) {
			continue
		} else if old != nil {
			old.stop()
		}
		o.byVP[vp.Prefix] = startOIDCProvider(p, vp.Prefix, vp.Auth.OIDC)
	}
	for prefix, rp := range o.byVP {
		if !keep[prefix] {
			rp.stop()
			delete(o.byVP, prefix)
		}
	}
}

// ready returns the discovered provider of a virtual proxy, nil while it
// is unreachable.
func (o *oidcProviders) ready(prefix string) *readyProvider {
	o.mu.Lock()
	rp := o.byVP[prefix]
	o.mu.Unlock()
	if rp == nil {
		return nil
	}
	return rp.ready.Load()
}

func (o *oidcProviders) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rp := range o.byVP {
		rp.stop()
	}
}

// oidcProvider is one virtual proxy's provider: discovered in the
// background, with back-off, until it answers.
type oidcProvider struct {
	cfg    config.OIDC
	prefix string
	ready  atomic.Pointer[readyProvider]
	cancel context.CancelFunc
}

// readyProvider is a provider whose discovery document was read.
type readyProvider struct {
	cfg        *config.OIDC
	issuer     string
	provider   *oidc.Provider
	verifier   *oidc.IDTokenVerifier
	endSession string
	client     *http.Client
	now        func() time.Time
}

// oidcHTTPTimeout bounds each call to a provider (discovery, token, keys).
const oidcHTTPTimeout = 10 * time.Second

// Back-off of discovery retries while a provider is unreachable.
const (
	oidcRetryFirst = time.Second
	oidcRetryMax   = time.Minute
)

func startOIDCProvider(p *Proxy, prefix string, cfg config.OIDC) *oidcProvider {
	ctx, cancel := context.WithCancel(context.Background())
	op := &oidcProvider{cfg: cfg, prefix: prefix, cancel: cancel}
	client := &http.Client{Timeout: oidcHTTPTimeout}
	go func() {
		wait := oidcRetryFirst
		for {
			rp, err := discover(ctx, client, &op.cfg, p.opts.Now)
			if err == nil {
				op.ready.Store(rp)
				p.log.Info("identity provider discovered", "event", "oidc.discovered", "vp", prefix, "issuer", rp.issuer)
				return
			}
			if ctx.Err() != nil {
				return
			}
			p.log.Error("identity provider unreachable", "event", "oidc.unreachable", "vp", prefix,
				"metadata_uri", cfg.MetadataURI, "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, oidcRetryMax)
		}
	}()
	return op
}

func (op *oidcProvider) stop() { op.cancel() }

func (op *oidcProvider) sameSettings(c *config.OIDC) bool {
	return reflect.DeepEqual(op.cfg, *c)
}

// discover reads the provider's discovery document; go-oidc checks that
// it names the configured issuer. The metadata URI does not tell whether
// the issuer ends with a slash (Entra ID's does not, Okta's does not,
// others' do): both spellings have the same discovery document, and the
// one the document names is the one every ID token must carry.
func discover(ctx context.Context, client *http.Client, cfg *config.OIDC, now func() time.Time) (*readyProvider, error) {
	ctx = oidc.ClientContext(ctx, client)
	issuer := cfg.Issuer
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil && !strings.HasSuffix(issuer, "/") && strings.Contains(err.Error(), "did not match the issuer") {
		issuer += "/"
		provider, err = oidc.NewProvider(ctx, issuer)
	}
	if err != nil {
		return nil, err
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := provider.Claims(&extra); err != nil {
		return nil, err
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: now})
	return &readyProvider{cfg: cfg, issuer: issuer, provider: provider, verifier: verifier,
		endSession: extra.EndSession, client: client, now: now}, nil
}

func (rp *readyProvider) oauth2Config(redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: rp.cfg.ClientID, ClientSecret: rp.cfg.ClientSecret,
		Endpoint: rp.provider.Endpoint(), RedirectURL: redirect,
		Scopes: strings.Fields(rp.cfg.Scope),
	}
}

// finish exchanges the code (with the PKCE verifier) and verifies the ID
// token; a refusal is an *oidcRefusal.
func (rp *readyProvider) finish(ctx context.Context, redirect, code string, st oidcState) (dir, user string, attrs []session.Attribute, rawID string, err error) {
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, rp.client), oidcHTTPTimeout)
	defer cancel()
	tok, err := rp.oauth2Config(redirect).Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return "", "", nil, "", failure(http.StatusBadRequest, "login not completed",
				fmt.Sprintf("the identity provider refused the code (%s %s): it is unknown, expired or already used; start again from the page you wanted", re.ErrorCode, re.ErrorDescription))
		}
		return "", "", nil, "", failure(http.StatusBadGateway, "identity provider unreachable", "openqps could not reach the identity provider's token endpoint; retry shortly")
	}
	rawID, _ = tok.Extra("id_token").(string)
	if rawID == "" {
		return "", "", nil, "", failure(http.StatusBadGateway, "login not completed", "the identity provider's token response has no id_token: request the openid scope")
	}
	idt, err := rp.verifier.Verify(ctx, rawID)
	if err != nil {
		return "", "", nil, "", failure(http.StatusBadGateway, "invalid ID token", "the identity provider's ID token does not verify: "+err.Error())
	}
	if !constantTimeEqual(idt.Nonce, st.Nonce) {
		return "", "", nil, "", failure(http.StatusBadRequest, "invalid ID token", "the ID token's nonce is not the one of the login this browser started (a token replayed from another login)")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return "", "", nil, "", failure(http.StatusBadGateway, "invalid ID token", "the ID token's claims are not a JSON object")
	}
	if len(idt.Audience) > 1 {
		if azp, _ := claims["azp"].(string); azp != rp.cfg.ClientID {
			return "", "", nil, "", failure(http.StatusBadGateway, "invalid ID token", fmt.Sprintf("the ID token has several audiences and its azp %q is not this client", azp))
		}
	}
	dir, user, attrs, err = oidcIdentity(rp.cfg, claims)
	if err != nil {
		return "", "", nil, "", failure(http.StatusForbidden, "unusable ID token", err.Error())
	}
	return dir, user, attrs, rawID, nil
}

// oidcIdentity reads the user and attributes from an ID token's claims:
// the user id from sub_claim, the realm as directory, then the
// attributes name, email, client_id, picture, group (one per element) and
// the attribute_claims, in that order.
func oidcIdentity(c *config.OIDC, claims map[string]any) (dir, user string, attrs []session.Attribute, err error) {
	sub, ok := claims[c.SubClaim].(string)
	if !ok {
		return "", "", nil, fmt.Errorf("the ID token has no string %q claim (oidc.sub_claim, the user id)", c.SubClaim)
	}
	if user, err = cleanIdentity("user id", "ID token", sub); err != nil {
		return "", "", nil, err
	}
	if dir, err = cleanIdentity("user directory", "oidc.realm", c.Realm); err != nil {
		return "", "", nil, err
	}
	standard := [][2]string{{c.NameClaim, "name"}, {c.EmailClaim, "email"}, {c.ClientIDClaim, "client_id"},
		{c.PictureClaim, "picture"}, {c.GroupsClaim, "group"}}
	for _, s := range standard {
		a, err := claimAttributes(claims, s[0], s[1])
		if err != nil {
			return "", "", nil, err
		}
		attrs = append(attrs, a...)
	}
	names := make([]string, 0, len(c.AttributeClaims))
	for name := range c.AttributeClaims {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		a, err := claimAttributes(claims, name, c.AttributeClaims[name])
		if err != nil {
			return "", "", nil, err
		}
		attrs = append(attrs, a...)
	}
	return dir, user, attrs, nil
}

// claimAttributes gives the attributes key of one claim: none when
// absent, one per element of a list.
func claimAttributes(claims map[string]any, claim, key string) ([]session.Attribute, error) {
	jc := map[string]any{claim: claims[claim]}
	return jwtAttributes(jc, map[string]string{claim: key})
}
