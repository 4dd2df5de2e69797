package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/krberror"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/service"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// Windows authentication (authentication_method windows), as QPS does it
// on a Windows domain: the browser proves who it is with a Kerberos
// ticket for openqps's service principal in Authorization: Negotiate
// (SPNEGO, RFC 4559); browsers whose user agent does not match the device
// pattern get a forms login instead (windows_form.go). NTLM, which a
// browser falls back to when it has no ticket, is refused with a page
// that says why (ntlmRefused).

// SPNEGO answers (RFC 4178 NegTokenResp), as gokrb5 spells them.
const (
	// negotiateReject ends a negotiation: the browser does not retry the
	// same token, so a refused ticket never loops.
	negotiateReject = "Negotiate oQcwBaADCgEC"
	// negotiateWantKerberos is accept-incomplete with Kerberos as the
	// supported mechanism: "send me a Kerberos token instead".
	negotiateWantKerberos = "Negotiate oRQwEqADCgEBoQsGCSqGSIb3EgECAg=="
)

// windowsLogin is authentication_method windows: a Negotiate token is
// verified even next to a valid cookie (the browser claims to be
// someone); a request that nobody vouched for is challenged
// (windowsChallenge). The forms login is a page of its own, served before
// the login methods are asked (formsLogin).
type windowsLogin struct{ p *Proxy }

func newWindowsLogin(p *Proxy, _ *virtualProxy) (loginMethod, error) { return windowsLogin{p}, nil }

// multipleAuthorization is rq.credential for a request with a Negotiate
// token among several Authorization headers: which one would count is
// anybody's guess, so none does.
const multipleAuthorization = "\x00multiple"

// takeCredential takes the Negotiate (or NTLM) token: openqps's
// credential, which never reaches a back end.
func (windowsLogin) takeCredential(rq *request) {
	values := rq.r.Header.Values("Authorization")
	for _, v := range values {
		if _, _, ok := negotiateCredentials(v); ok {
			rq.credential, rq.credentialFound = v, true
			if len(values) > 1 {
				rq.credential = multipleAuthorization
			}
			rq.r.Header.Del("Authorization")
			return
		}
	}
}

func (m windowsLogin) login(rq *request, known verdict) (verdict, error) {
	m.p.claimCredentialSession(known)
	if !rq.credentialFound {
		if known.kind == identified || rq.vp.cfg.Auth.AnonymousAccess != config.AnonymousNone {
			return verdict{}, nil
		}
		return m.p.windowsChallenge(rq), nil
	}
	if rq.credential == multipleAuthorization {
		return refusal(http.StatusBadRequest, "invalid Negotiate token", "the request has several Authorization headers; send one"), nil
	}
	scheme, token, _ := negotiateCredentials(rq.credential)
	t, err := parseNegotiate(scheme, token)
	if err != nil {
		return m.p.negotiateRefusal(rq, http.StatusBadRequest, "invalid Negotiate token", err.Error()), nil
	}
	switch t.kind {
	case negotiateNTLM:
		return m.p.ntlmRefusal(rq), nil
	case negotiateOtherFirst:
		v := refusal(http.StatusUnauthorized, "send a Kerberos token", "the SPNEGO token led with another mechanism; openqps accepts Kerberos only")
		v.challenge = negotiateWantKerberos
		return v, nil
	}
	w := &rq.vp.cfg.Auth.Windows
	dir, user, attrs, status, err := verifyKerberos(w, &t.apReq, rq.r.RemoteAddr)
	if err != nil {
		return m.p.negotiateRefusal(rq, status, "Kerberos ticket refused", err.Error()), nil
	}
	return m.p.useIdentity(rq, known, dir, user, "kerberos\x00"+dir+"\x00"+user, attrs)
}

// verifyKerberos checks an AP-REQ against the virtual proxy's keytab and
// returns the user it names: the ticket must be for the configured
// service principal, decrypt with its key, be valid now, carry a fresh
// authenticator (not a replay, within the clock skew) and name a user of
// a mapped realm. status is the refusal's when err is set.
func verifyKerberos(w *config.Windows, req *messages.APReq, remote string) (dir, user string, attrs []session.Attribute, status int, err error) {
	tkt := req.Ticket
	spn := tkt.SName.PrincipalNameString() + "@" + tkt.Realm
	switch {
	case tkt.Realm != w.Realm:
		// A user of a trusted realm still gets the ticket for this
		// service from this realm's KDC, through the trust.
		return "", "", nil, http.StatusUnauthorized, fmt.Errorf("the ticket for %s was issued in realm %s, not by the KDC of %s: openqps holds no key of that realm (a user of a trusted realm must get the ticket through the trust)",
			spn, tkt.Realm, w.Realm)
	case !tkt.SName.Equal(w.Principal):
		return "", "", nil, http.StatusUnauthorized, fmt.Errorf("the ticket is for %s, not for %s: the browser asked for the service principal of another host name (users must open the site by the name in %s, or register it with setspn)",
			spn, w.ServicePrincipal, w.ServicePrincipal)
	}
	opts := []func(*service.Settings){
		service.MaxClockSkew(w.MaxClockSkew),
		service.KeytabPrincipal(w.Principal.PrincipalNameString()),
		service.DecodePAC(false), // pacAttributes
	}
	if h, err := types.GetHostAddress(remote); err == nil {
		opts = append(opts, service.ClientAddress(h))
	}
	ok, creds, err := service.VerifyAPREQ(req, service.NewSettings(w.Keys, opts...))
	if err != nil || !ok {
		return "", "", nil, http.StatusUnauthorized, kerberosReason(err, w)
	}
	realm := creds.Domain()
	dir, mapped := realmDirectory(w, realm)
	if !mapped {
		return "", "", nil, http.StatusForbidden, fmt.Errorf("the user %s@%s is from a realm this virtual proxy does not map to a user directory; add it to windows.realm_directories", creds.UserName(), realm)
	}
	if user, err = cleanIdentity("user id", "Kerberos ticket", creds.UserName()); err != nil {
		return "", "", nil, http.StatusForbidden, err
	}
	if attrs, err = pacAttributes(req, w); err != nil {
		return "", "", nil, http.StatusUnauthorized, err
	}
	return dir, user, attrs, 0, nil
}

// realmDirectory returns the user directory a realm maps to. Realm names
// are compared without case: Active Directory accepts either.
func realmDirectory(w *config.Windows, realm string) (string, bool) {
	if d, ok := w.RealmDirectories[realm]; ok {
		return d, true
	}
	for r, d := range w.RealmDirectories {
		if strings.EqualFold(r, realm) {
			return d, true
		}
	}
	return "", false
}

// kerberosReason turns gokrb5's verdict into what an administrator can
// act on.
func kerberosReason(err error, w *config.Windows) error {
	var kerr messages.KRBError
	if errors.As(err, &kerr) {
		switch kerr.ErrorCode {
		case errorcode.KRB_AP_ERR_SKEW:
			return fmt.Errorf("the authenticator's time is more than %s from openqps's clock: synchronise the client's clock with the domain (w32tm /resync) (%v)", w.MaxClockSkew, err)
		case errorcode.KRB_AP_ERR_REPEAT:
			return fmt.Errorf("the authenticator was already used: a replayed token (%v)", err)
		case errorcode.KRB_AP_ERR_TKT_EXPIRED:
			return fmt.Errorf("the ticket has expired: the client must get a new one (klist purge) (%v)", err)
		case errorcode.KRB_AP_ERR_TKT_NYV:
			return fmt.Errorf("the ticket is not valid yet (%v)", err)
		case errorcode.KRB_AP_ERR_BADADDR:
			return fmt.Errorf("the ticket is bound to other client addresses (%v)", err)
		}
		return fmt.Errorf("the ticket is not valid: %v", err)
	}
	var e krberror.Krberror
	if errors.As(err, &e) && e.RootCause == krberror.DecryptingError {
		return fmt.Errorf("the ticket does not decrypt with the key of %s in the keytab: the keytab is stale (the account's password or key version changed since it was exported: export it again) or the ticket was forged (%v)", w.ServicePrincipal, err)
	}
	if err == nil {
		err = errors.New("not valid")
	}
	return fmt.Errorf("the ticket is not valid: %v", err)
}

// negotiateRefusal refuses a Negotiate token. Its challenge ends the
// negotiation (negotiateReject), so the browser shows the page instead of
// sending the same token again.
func (p *Proxy) negotiateRefusal(rq *request, status int, msg, detail string) verdict {
	if hasFormsLogin(rq.vp) {
		detail += "; or sign in with your password at " + p.formsLoginURL(rq)
	}
	v := refusal(status, msg, detail)
	if hasFormsLogin(rq.vp) {
		v.retry = p.formsLoginURL(rq)
	}
	if status == http.StatusUnauthorized {
		v.challenge = negotiateReject
	}
	return v
}

// ntlmRefusal refuses an NTLM token with a page, never a new challenge,
// since the browser would only answer it with NTLM again.
func (p *Proxy) ntlmRefusal(rq *request) verdict {
	detail := "Your browser answered with NTLM because it could not get a Kerberos ticket for " + rq.vp.cfg.Auth.Windows.ServicePrincipal +
		". openqps does not accept NTLM: it proves nothing about the server, a man in the middle can relay it to log in elsewhere as you, and Microsoft is retiring it. " +
		"To log in with Kerberos, open the site by the host name of that service principal (not by IP address or another alias), from a computer joined to the domain, " +
		"with the site in the browser's Intranet zone (Chrome, Edge: --auth-server-allowlist; Firefox: network.negotiate-auth.trusted-uris); an administrator checks the name with setspn -Q " +
		rq.vp.cfg.Auth.Windows.ServicePrincipal
	v := refusal(http.StatusForbidden, "NTLM is not supported", detail)
	if hasFormsLogin(rq.vp) {
		v.reason += ". Or sign in with your password at " + p.formsLoginURL(rq)
		v.retry = p.formsLoginURL(rq)
	}
	return v
}

// windowsChallenge is the verdict for a request nobody vouched for:
// browsers the device pattern matches, every client that is not
// navigating, and every client when there is no forms login get 401
// WWW-Authenticate: Negotiate (the page says how to get in); other
// browsers are sent to the forms login.
func (p *Proxy) windowsChallenge(rq *request) verdict {
	vp := rq.vp
	navigation := rq.r.Method == http.MethodGet && !isUpgrade(rq.r)
	if hasFormsLogin(vp) && navigation && !deviceMatches(vp.cfg.Auth.Windows.DevicePattern, rq.r.UserAgent()) {
		return redirect(p.formsLoginURL(rq))
	}
	// The detail is what a browser shows when it cannot answer the
	// challenge (no ticket, site not trusted for Windows login).
	detail := "this site logs you in with your Windows account: send Authorization: Negotiate with a Kerberos ticket for " + vp.cfg.Auth.Windows.ServicePrincipal +
		" (a browser does so on a computer of the domain, opening the site by that host name, with the site trusted for Windows login)"
	if hasFormsLogin(vp) {
		detail += "; or sign in with your password at " + p.formsLoginURL(rq)
	}
	v := refusal(http.StatusUnauthorized, "not authenticated", detail)
	if hasFormsLogin(vp) {
		v.retry = p.formsLoginURL(rq) // the page links to it
	}
	v.challenge = "Negotiate"
	return v
}

// deviceMatches reports whether a user agent gets Windows authentication:
// it contains pattern, case-insensitively, or pattern is "*".
func deviceMatches(pattern, userAgent string) bool {
	if pattern == "*" {
		return true
	}
	return strings.Contains(strings.ToLower(userAgent), strings.ToLower(pattern))
}

// hasFormsLogin reports whether the virtual proxy has a KDC to check
// passwords with.
func hasFormsLogin(vp *virtualProxy) bool {
	return vp.cfg.Auth.Windows.KrbConfig != nil
}

// formsLoginURL is the forms login page, with the URL to return to.
func (p *Proxy) formsLoginURL(rq *request) string {
	return "/" + prefixSlash(rq.vp.cfg.Prefix) + formsLoginPath[1:] + "?target=" + url.QueryEscape(p.originalURL(rq))
}
