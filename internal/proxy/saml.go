package proxy

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	saml2 "github.com/russellhaering/gosaml2"
	"github.com/russellhaering/gosaml2/types"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/pki"
	"github.com/openqps/openqps/internal/session"
)

// The paths of a SAML virtual proxy, below its prefix. samlauthn/ is
// where QPS has its assertion consumer service, so an IdP set up for a
// QPS virtual proxy keeps working.
const (
	samlACSPath      = "/samlauthn/"
	samlMetadataPath = "/samlmetadata"
)

// maxSAMLResponse bounds the POST to the assertion consumer service: a
// signed response with a few hundred attribute values is tens of
// kilobytes.
const maxSAMLResponse = 1 << 20

// samlLoginTTL is how long a browser may take at the IdP: the lifetime
// of the cookie that binds the AuthnRequest to it.
const samlLoginTTL = 10 * time.Minute

// samlSecret names the store secret that signs the login cookies.
const samlSecret = "saml-login"

// samlUsedPrefix holds one marker per consumed assertion (see
// markAssertionUsed). Its colon keeps it apart from every virtual proxy
// prefix, which may not hold one.
const samlUsedPrefix = "saml:used-assertions"

// samlLogin is the SAML service provider of one virtual proxy, its login
// method: it answers the IdP's POST to the assertion consumer service
// (a session and a redirect to where the browser was going, or a
// refusal), and sends a browser navigation that nobody identified to the
// IdP. It is immutable once built; a reload builds a new one.
type samlLogin struct {
	p      *Proxy
	cfg    *config.SAML
	prefix string
	key    tls.Certificate // RSA: signs AuthnRequests, decrypts assertions
	idp    *dsig.MemoryX509CertificateStore
}

// newSAMLLogin prepares vp's service provider: its key pair, the
// configured one or the one openqps keeps in data_dir/saml.
func newSAMLLogin(p *Proxy, vp *virtualProxy) (loginMethod, error) {
	return newSAMLProvider(p, vp.cfg)
}

func newSAMLProvider(p *Proxy, vp *config.VirtualProxy) (*samlLogin, error) {
	s := &vp.Auth.SAML
	key, err := samlKey(s, vp.Prefix)
	if err != nil {
		return nil, err
	}
	return &samlLogin{
		p: p, cfg: s, prefix: vp.Prefix, key: key,
		idp: &dsig.MemoryX509CertificateStore{Roots: s.IdP.Certificates},
	}, nil
}

// samlKey loads or makes the service-provider key pair of a virtual
// proxy.
func samlKey(s *config.SAML, prefix string) (tls.Certificate, error) {
	var key tls.Certificate
	var err error
	if s.Certificate != "" {
		key, err = pki.LoadSAMLKey(s.Certificate, s.Key)
	} else {
		name := prefix
		if name == "" {
			name = "default"
		}
		key, err = pki.EnsureSAMLKey(pki.SAMLDir(s.DataDir), name)
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("saml key: %w", err)
	}
	if _, ok := key.PrivateKey.(*rsa.PrivateKey); !ok || key.Leaf == nil {
		return tls.Certificate{}, errors.New("saml.key: the key must be RSA, which assertion encryption needs")
	}
	return key, nil
}

// login is the login method: the assertion consumer service, or the
// redirect to the IdP for a navigation nobody identified.
func (s *samlLogin) login(rq *request, known verdict) (verdict, error) {
	switch rq.path {
	case samlACSPath, strings.TrimSuffix(samlACSPath, "/"):
		if rq.r.Method != http.MethodPost {
			return refusal(http.StatusMethodNotAllowed, "SAML assertion consumer", "the assertion consumer service takes the IdP's SAMLResponse by POST only"), nil
		}
		return s.consume(rq)
	}
	navigation := (rq.r.Method == http.MethodGet || rq.r.Method == http.MethodHead) && !isUpgrade(rq.r)
	if known.kind == identified || !navigation || !rq.routes.addressAllowed(rq.scheme, rq.r.Host, rq.vp) {
		// Nothing to do, or for the handler to answer (401, or an
		// unknown host refused before anyone is sent anywhere).
		return verdict{}, nil
	}
	if rq.vp.cfg.Auth.AnonymousAccess != config.AnonymousNone && !forceAuthentication(rq) {
		return verdict{}, nil // anonymous use, unless the user asks to log in
	}
	return s.loginRedirect(rq)
}

// acsURL is the assertion consumer URL: the configured host URI, else
// the public URL, else the address the request came to (which the front
// end has checked is one of this proxy's).
func (s *samlLogin) acsURL(rq *request) string {
	base := s.cfg.HostURI
	if base == "" {
		base = rq.routes.cfg.Frontend.PublicURL
	}
	if base == "" {
		base = rq.scheme + "://" + rq.r.Host
	}
	return s.baseURL(base) + samlACSPath
}

func (s *samlLogin) baseURL(base string) string {
	base = strings.TrimSuffix(base, "/")
	if s.prefix != "" {
		base += "/" + s.prefix
	}
	return base
}

// provider is gosaml2's service provider for one request: the ACS URL
// may depend on the request, and the clock is openqps's.
func (s *samlLogin) provider(acs string, now time.Time) *saml2.SAMLServiceProvider {
	sp := &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:      s.cfg.IdP.SSOURL,
		IdentityProviderIssuer:      s.cfg.IdP.EntityID,
		IdentityProviderSLOURL:      s.cfg.IdP.SLOURL,
		AssertionConsumerServiceURL: acs,
		ServiceProviderIssuer:       s.cfg.EntityID,
		AudienceURI:                 s.cfg.EntityID,
		IDPCertificateStore:         s.idp,
		SignAuthnRequests:           *s.cfg.SignAuthnRequests,
		SignAuthnRequestsAlgorithm:  dsig.RSASHA256SignatureMethod,
		SPKeyStore:                  dsig.TLSCertKeyStore(s.key),
		AllowMissingAttributes:      true,
		// The library's own time checks run on a clock held back by the
		// allowed skew; checkTimes applies the skew both ways.
		Clock:                  dsig.NewFakeClockAt(now.Add(-s.cfg.ClockSkew)),
		MaximumXMLTokens:       50000,
		ValidateEncryptionCert: false,
	}
	if s.cfg.SigningAlgorithm == config.SAMLSHA1 {
		sp.SignAuthnRequestsAlgorithm = dsig.RSASHA1SignatureMethod
	}
	sp.SetSPKeyStore(&saml2.KeyStore{Signer: s.key.PrivateKey.(crypto.Signer), Cert: s.key.Certificate[0]})
	return sp
}

// samlRelay is what the login cookie binds to the browser: the request
// the IdP must answer and where to go afterwards.
type samlRelay struct {
	RequestID string `json:"r"`
	Target    string `json:"t"`
	Expires   int64  `json:"e"`
}

// samlCookieName is the login cookie of one login in progress; the
// RelayState names it, so logins in several tabs do not overwrite each
// other.
func samlCookieName(relayState string) string { return "openqps-saml-" + relayState }

// loginRedirect sends a browser without a session to the IdP with an
// AuthnRequest, to come back to the URL it asked for (or its reloadUri).
// Nothing is stored: the request id and the target travel in a cookie
// signed with a key every node shares, valid samlLoginTTL, and sent only
// to the assertion consumer path.
func (s *samlLogin) loginRedirect(rq *request) (verdict, error) {
	p := s.p
	target, err := p.loginTarget(rq)
	if err != nil {
		return refusal(http.StatusBadRequest, "reloadUri not allowed", err.Error()), nil
	}
	if len(target) > session.MaxTargetURI {
		return refusal(http.StatusRequestURITooLong, "URL too long to log in with",
			fmt.Sprintf("the login keeps the URL to return to, at most %d bytes; this one has %d: shorten it", session.MaxTargetURI, len(target))), nil
	}
	now := p.opts.Now()
	sp := s.provider(s.acsURL(rq), now)
	doc, err := sp.BuildAuthRequestDocumentNoSig()
	if err != nil {
		return verdict{}, fmt.Errorf("build AuthnRequest: %w", err)
	}
	relay := samlRelay{RequestID: doc.Root().SelectAttrValue("ID", ""), Target: target, Expires: now.Add(samlLoginTTL).Unix()}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	relayState := base64.RawURLEncoding.EncodeToString(nonce)
	loc, err := sp.BuildAuthURLRedirect(relayState, doc)
	if err != nil {
		return verdict{}, fmt.Errorf("build AuthnRequest URL: %w", err)
	}
	key, err := p.store.Secret(rq.r.Context(), samlSecret)
	if err != nil {
		return verdict{}, err
	}
	payload, _ := json.Marshal(relay)
	value := base64.RawURLEncoding.EncodeToString(payload)
	name := samlCookieName(relayState)
	value += "." + samlMAC(key, s.prefix, name, value)
	http.SetCookie(rq.w, s.loginCookie(rq, name, value, int(samlLoginTTL/time.Second)))
	p.log.Debug("sent to SAML identity provider", "event", "saml.authn_request", "vp", s.prefix, "request_id", relay.RequestID)
	return redirect(loc), nil
}

// loginCookie is the login cookie: HttpOnly, for the assertion consumer
// path only, and SameSite=None over https, as the IdP's answer is a
// cross-site POST that a Lax cookie would not join.
func (s *samlLogin) loginCookie(rq *request, name, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: s.baseURL("") + samlACSPath, MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if rq.scheme == "https" {
		c.Secure, c.SameSite = true, http.SameSiteNoneMode
	}
	return c
}

func samlMAC(key []byte, prefix, name, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(prefix + "\x00" + name + "\x00" + value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// samlRelayFromCookie returns the login in progress that relayState
// names, when its cookie is there, signed and fresh.
func (s *samlLogin) relayFromCookie(rq *request, relayState string) (samlRelay, bool, error) {
	if relayState == "" || len(relayState) > 64 {
		return samlRelay{}, false, nil
	}
	c, err := rq.r.Cookie(samlCookieName(relayState))
	if err != nil {
		return samlRelay{}, false, nil
	}
	value, mac, ok := strings.Cut(c.Value, ".")
	if !ok {
		return samlRelay{}, false, nil
	}
	key, err := s.p.store.Secret(rq.r.Context(), samlSecret)
	if err != nil {
		return samlRelay{}, false, err
	}
	if !hmac.Equal([]byte(mac), []byte(samlMAC(key, s.prefix, c.Name, value))) {
		return samlRelay{}, false, nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(value)
	var relay samlRelay
	if err != nil || json.Unmarshal(payload, &relay) != nil || s.p.opts.Now().Unix() >= relay.Expires {
		return samlRelay{}, false, nil
	}
	return relay, true, nil
}

// serveSAMLMetadata answers the virtual proxy's metadata path: the
// service provider's EntityDescriptor, for the IdP's administrator.
func (p *Proxy) serveSAMLMetadata(rq *request, s *samlLogin) {
	if rq.r.Method != http.MethodGet && rq.r.Method != http.MethodHead {
		rq.w.Header().Set("Allow", "GET, HEAD")
		p.reject(rq, http.StatusMethodNotAllowed, "SAML metadata", "fetch the service provider's metadata with GET")
		return
	}
	if !rq.routes.addressAllowed(rq.scheme, rq.r.Host, rq.vp) {
		p.reject(rq, http.StatusBadRequest, "unknown host", fmt.Sprintf("Host %q is not an address of this proxy: use %s", rq.r.Host, rq.routes.addressHint(rq.scheme)))
		return
	}
	md, err := s.metadata(s.acsURL(rq), p.opts.Now())
	if err != nil {
		p.log.Error("SAML metadata failed", "event", "saml.metadata_error", "vp", s.prefix, "err", err)
		p.reject(rq, http.StatusInternalServerError, "SAML metadata", "openqps could not write the metadata; see its log")
		return
	}
	rq.w.Header().Set("Content-Type", "application/samlmetadata+xml")
	rq.w.Header().Set("Cache-Control", "no-store")
	rq.w.Write(md)
}

// metadata is the service provider's EntityDescriptor.
func (s *samlLogin) metadata(acs string, now time.Time) ([]byte, error) {
	ed, err := s.provider(acs, now).Metadata()
	if err != nil {
		return nil, err
	}
	ed.SPSSODescriptor.WantAssertionsSigned = true
	out, err := xml.MarshalIndent(ed, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

// SAMLMetadata is the SAML service-provider metadata of the virtual
// proxy with the given prefix, for an IdP administrator (openqps saml
// metadata). It makes the service-provider key when there is none yet,
// as the first start would.
func SAMLMetadata(cfg *config.Config, prefix string) ([]byte, error) {
	for i := range cfg.VirtualProxies {
		vp := &cfg.VirtualProxies[i]
		if vp.Prefix != prefix {
			continue
		}
		if vp.Auth.AuthenticationMethod != config.AuthSAML {
			return nil, fmt.Errorf("virtual proxy %q uses authentication_method %s, not saml", prefix, vp.Auth.AuthenticationMethod)
		}
		vp.Auth.SAML.DataDir = cfg.DataDir
		s, err := newSAMLProvider(nil, vp)
		if err != nil {
			return nil, fmt.Errorf("virtual proxy %q: %w", prefix, err)
		}
		base := vp.Auth.SAML.HostURI
		if base == "" {
			base = cfg.Frontend.PublicURL
		}
		if base == "" {
			return nil, fmt.Errorf("virtual proxy %q: set saml.host_uri (or frontend.public_url): the metadata names the assertion consumer URL, which needs the address browsers use", prefix)
		}
		return s.metadata(s.baseURL(base)+samlACSPath, time.Now())
	}
	return nil, fmt.Errorf("no virtual proxy has the prefix %q", prefix)
}

// samlRefusal is a SAMLResponse that failed a check: the reason is for
// the person and the log; the XML never is.
type samlRefusal struct{ reason string }

func (e samlRefusal) Error() string { return e.reason }

func refuse(format string, args ...any) error { return samlRefusal{fmt.Sprintf(format, args...)} }

// consume checks the IdP's answer and logs the browser in. A refusal
// names what failed, never the XML; its reason quotes values of the
// response and is cut to maxSAMLReason, so a response cannot make a log
// line of a megabyte.
func (s *samlLogin) consume(rq *request) (verdict, error) {
	p := s.p
	rq.r.Body = http.MaxBytesReader(rq.w, rq.r.Body, maxSAMLResponse)
	if err := rq.r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return samlRefused(http.StatusRequestEntityTooLarge, fmt.Sprintf("the SAMLResponse POST is larger than %d bytes", maxSAMLResponse)), nil
		}
		return samlRefused(http.StatusBadRequest, "the POST is not a form: "+err.Error()), nil
	}
	relayState := rq.r.PostForm.Get("RelayState")
	relay, bound, err := s.relayFromCookie(rq, relayState)
	if err != nil {
		return verdict{}, err
	}
	now := p.opts.Now()
	a, err := s.verify(rq.r.PostForm.Get("SAMLResponse"), s.acsURL(rq), now)
	if err == nil {
		err = s.checkBinding(a, relay, bound)
	}
	if err == nil {
		err = s.markAssertionUsed(rq, a, now)
	}
	var refused samlRefusal
	if errors.As(err, &refused) {
		return samlRefused(http.StatusForbidden, refused.reason), nil
	} else if err != nil {
		return verdict{}, err
	}
	if bound {
		http.SetCookie(rq.w, s.loginCookie(rq, samlCookieName(relayState), "", -1))
	}
	sess, err := p.startSession(rq, a.directory, a.user, a.attrs)
	if err != nil {
		return verdict{}, fmt.Errorf("session for SAML user: %w", err)
	}
	p.log.Info("user authenticated", "event", "auth.login", "method", config.AuthSAML, "vp", s.prefix,
		"user_directory", a.directory, "user_id", a.user, "session", session.Redact(sess.ID), "assertion", a.id, "remote", rq.r.RemoteAddr)
	target := s.cfg.LandingPage
	if bound {
		target = relay.Target
	}
	v := redirect(target)
	v.status = http.StatusSeeOther
	return v, nil
}

// samlRefused is the refusal of a SAMLResponse.
func samlRefused(status int, reason string) verdict {
	if len(reason) > maxSAMLReason {
		reason = strings.ToValidUTF8(reason[:maxSAMLReason], "") + "…"
	}
	return refusal(status, "SAML login refused", reason+"; log in again from the start page")
}

const maxSAMLReason = 400

// samlAssertion is what openqps takes from a verified response.
type samlAssertion struct {
	id, inResponseTo string
	directory, user  string
	attrs            []session.Attribute
	// usableUntil is when the assertion may no longer be presented.
	usableUntil time.Time
}

// verify checks a SAMLResponse: plain XML (no DTD, comment or processing
// instruction), signed by the IdP over exactly one assertion (gosaml2
// verifies the signed element and reads only what it covers), from the
// IdP, for this service provider (Destination, Recipient, Audience), in
// its validity window; and it reads the user from it.
func (s *samlLogin) verify(encoded, acs string, now time.Time) (samlAssertion, error) {
	if encoded == "" {
		return samlAssertion{}, refuse("the POST holds no SAMLResponse")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(encoded), ""))
	if err != nil {
		return samlAssertion{}, refuse("the SAMLResponse is not base64")
	}
	if err := config.CheckPlainXML(raw); err != nil {
		return samlAssertion{}, refuse("the SAMLResponse is refused: %v", err)
	}
	sp := s.provider(acs, now)
	resp, err := sp.ValidateEncodedResponse(base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return samlAssertion{}, refuse("the SAMLResponse failed verification: %v", err)
	}
	if resp.Destination != acs {
		return samlAssertion{}, refuse("the response's Destination %q is not this assertion consumer URL %q", resp.Destination, acs)
	}
	if len(resp.Assertions) != 1 {
		return samlAssertion{}, refuse("the response holds %d assertions; openqps takes exactly one", len(resp.Assertions))
	}
	as := &resp.Assertions[0]
	if as.Subject == nil || as.Subject.SubjectConfirmation == nil || as.Subject.SubjectConfirmation.SubjectConfirmationData == nil {
		return samlAssertion{}, refuse("the assertion has no bearer SubjectConfirmation")
	}
	scd := as.Subject.SubjectConfirmation.SubjectConfirmationData
	if scd.InResponseTo != resp.InResponseTo {
		return samlAssertion{}, refuse("the assertion answers request %q but the response answers %q", scd.InResponseTo, resp.InResponseTo)
	}
	until, err := s.checkTimes(as, now)
	if err != nil {
		return samlAssertion{}, err
	}
	if err := s.checkAudience(as); err != nil {
		return samlAssertion{}, err
	}
	a := samlAssertion{id: as.ID, inResponseTo: resp.InResponseTo, usableUntil: until}
	if a.id == "" {
		return samlAssertion{}, refuse("the assertion has no ID")
	}
	if err := s.readUser(as, &a); err != nil {
		return samlAssertion{}, err
	}
	return a, nil
}

// checkTimes applies Conditions and SubjectConfirmationData, with the
// configured clock skew, and returns until when the assertion could be
// presented (the replay marker lives that long).
func (s *samlLogin) checkTimes(as *types.Assertion, now time.Time) (time.Time, error) {
	skew := s.cfg.ClockSkew
	c := as.Conditions
	if c == nil || c.NotOnOrAfter == "" {
		return time.Time{}, refuse("the assertion has no Conditions NotOnOrAfter")
	}
	until, err := time.Parse(time.RFC3339, c.NotOnOrAfter)
	if err != nil {
		return time.Time{}, refuse("the assertion's NotOnOrAfter %q is not a time", c.NotOnOrAfter)
	}
	if !now.Before(until.Add(skew)) {
		return time.Time{}, refuse("the assertion expired at %s (NotOnOrAfter)", c.NotOnOrAfter)
	}
	if c.NotBefore != "" {
		from, err := time.Parse(time.RFC3339, c.NotBefore)
		if err != nil {
			return time.Time{}, refuse("the assertion's NotBefore %q is not a time", c.NotBefore)
		}
		if now.Add(skew).Before(from) {
			return time.Time{}, refuse("the assertion is not valid before %s (NotBefore); check the clocks of the IdP and of openqps", c.NotBefore)
		}
	}
	if scd := as.Subject.SubjectConfirmation.SubjectConfirmationData; scd.NotOnOrAfter != "" {
		if t, err := time.Parse(time.RFC3339, scd.NotOnOrAfter); err == nil && t.Before(until) {
			until = t
		}
	}
	return until.Add(skew), nil
}

func (s *samlLogin) checkAudience(as *types.Assertion) error {
	rs := as.Conditions.AudienceRestrictions
	if len(rs) == 0 {
		return refuse("the assertion has no AudienceRestriction; the IdP must name the service provider %q", s.cfg.EntityID)
	}
	for _, r := range rs {
		found := false
		for _, aud := range r.Audiences {
			found = found || aud.Value == s.cfg.EntityID
		}
		if !found {
			return refuse("the assertion is not for this service provider: its Audience is not %q", s.cfg.EntityID)
		}
	}
	return nil
}

// readUser takes the user id, directory and mapped attributes.
func (s *samlLogin) readUser(as *types.Assertion, a *samlAssertion) error {
	values := map[string][]string{}
	if as.AttributeStatement != nil {
		for _, attr := range as.AttributeStatement.Attributes {
			for _, v := range attr.Values {
				values[attr.Name] = append(values[attr.Name], v.Value)
			}
		}
	}
	one := func(what, name string) (string, error) {
		vs := values[name]
		if len(vs) != 1 {
			return "", refuse("the assertion's attribute %q (the %s) has %d values; it needs exactly one", name, what, len(vs))
		}
		return vs[0], nil
	}
	var err error
	if id := s.cfg.UserIDAttribute; id == "" || strings.EqualFold(id, "NameID") {
		if as.Subject.NameID == nil {
			return refuse("the assertion has no NameID")
		}
		a.user = as.Subject.NameID.Value
	} else if a.user, err = one("user id", id); err != nil {
		return err
	}
	if d, ok := strings.CutPrefix(s.cfg.UserDirectoryAttribute, "["); ok {
		a.directory = strings.TrimSuffix(d, "]")
	} else if a.directory, err = one("user directory", s.cfg.UserDirectoryAttribute); err != nil {
		return err
	}
	if a.user, err = cleanIdentity("user id", "SAML assertion", a.user); err != nil {
		return refuse("%v", err)
	}
	if a.directory, err = cleanIdentity("user directory", "SAML assertion", a.directory); err != nil {
		return refuse("%v", err)
	}
	// In the assertion's order, for a stable X-Qlik-Security.
	if as.AttributeStatement != nil {
		for _, attr := range as.AttributeStatement.Attributes {
			name, ok := s.cfg.AttributeMapping[attr.Name]
			if !ok {
				continue
			}
			for _, v := range attr.Values {
				a.attrs = append(a.attrs, session.Attribute{Key: name, Value: v.Value})
			}
		}
	}
	return nil
}

// checkBinding ties the response to this browser: it must answer the
// AuthnRequest whose cookie the browser holds. A response that answers no
// request (IdP-initiated) is taken only when saml.allow_idp_initiated is
// on, and then lands on the configured page, never where it says.
func (s *samlLogin) checkBinding(a samlAssertion, relay samlRelay, bound bool) error {
	switch {
	case a.inResponseTo == "" && s.cfg.AllowIdPInitiated:
		return nil
	case a.inResponseTo == "":
		return refuse("the response answers no AuthnRequest (IdP-initiated login), which this virtual proxy does not accept (saml.allow_idp_initiated)")
	case !bound:
		return refuse("the response answers request %q, but this browser has no login in progress (or it took longer than %s)", a.inResponseTo, samlLoginTTL)
	case relay.RequestID != a.inResponseTo:
		return refuse("the response answers request %q, not the request %q this browser made", a.inResponseTo, relay.RequestID)
	}
	return nil
}

// markAssertionUsed records that the assertion was consumed, in the
// shared store, so that it logs in once across every node: the marker is
// a session under samlUsedPrefix whose id is keyed from the IdP and the
// assertion ID, and whose Add fails for a live duplicate. It lives as
// long as the assertion could be presented. Only verified assertions
// reach this, so strangers cannot make markers.
func (s *samlLogin) markAssertionUsed(rq *request, a samlAssertion, now time.Time) error {
	p := s.p
	key, err := p.store.Secret(rq.r.Context(), samlSecret)
	if err != nil {
		return err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s.cfg.IdP.EntityID + "\x00" + a.id))
	id := base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	ttl := max(a.usableUntil.Sub(now), time.Second)
	err = p.store.Add(rq.r.Context(), session.Session{
		Prefix: samlUsedPrefix, ID: id, UserDirectory: "SAML", UserID: "assertion",
		Created: now, LastUsed: now, Timeout: ttl,
	})
	if errors.Is(err, session.ErrExists) {
		return refuse("the assertion %q was already used to log in; an assertion logs in once", a.id)
	}
	return err
}
