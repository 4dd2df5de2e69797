package proxy

import (
	"net/http"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// A loginMethod is one way a request proves who sent it: a ticket in the
// query (ticket.go), the session cookie (sessioncookie.go), the virtual
// proxy's authentication_method (header.go, jwt.go; next OIDC, SAML,
// Windows), an anonymous session (anonymous.go). authenticate asks them
// in that order; only the handler (ServeHTTP) writes the response.
//
// # What a method gets
//
// A method value is made once per virtual proxy and configuration, by its
// constructor in vpLoginMethods, from the Proxy p and the virtual proxy
// vp. From p it has the store (p.store), the clock (p.opts.Now — never
// time.Now, so that tests control expiry) and the log (p.log); vp.cfg are
// the virtual proxy's settings, vp.cfg.Auth the method's own. A
// constructor that needs more (a parsed key, an IdP's metadata) prepares
// it there, once, and returns an error for what it cannot use.
//
// login is then called once per request with:
//   - rq: rq.r is the HTTP request (its context ends with the request),
//     rq.vp the virtual proxy, rq.scheme the scheme the client used,
//     rq.routes the configuration in force. A method may change rq.r to
//     remove its credential (the ticket from the URL, the bearer token
//     from the headers), so that it never reaches a back end.
//   - known: the identity found before this method, if any (for the
//     virtual proxy's method: the session cookie's). A method that finds
//     no credential of its own returns noVerdict, and known stands.
//
// To log a user in, a method calls p.startSession(rq, dir, user, attrs):
// it stores a new session and sets its cookie on the response. A method
// whose credential comes on every request (a header, a token) uses
// p.useIdentity instead, which reuses the session known or last made for
// the same credential (credentials.go). A method that keeps its identity
// in the cookie itself (anonymous.go) sets it with rq.vp.setCookie.
//
// # What it returns
//
// A verdict, by value (see verdictKind): noVerdict; identified, with the
// session; refused, with a status, an error and a reason, answered at
// once (a bad token, even next to a valid cookie); failedLogin, a refused
// credential that leaves the request to the methods after it (a stale
// ticket next to a valid cookie); or answered, a response of its own (a
// redirect to an identity provider, the redirect that drops a redeemed
// ticket from the URL). A 401 that challenges the client (WWW-Authenticate:
// Negotiate or Bearer) is a refusal with a challenge.
//
// The error result is only for the store (or another dependency) failing:
// the handler answers it 503 (429 for session.ErrFull), and a canceled
// context silently. A credential that is wrong is a verdict, never an
// error.
//
// # Who writes what
//
// A method never writes the response: no WriteHeader, no Write, no
// p.reject. The only response header it may set is its cookie (through
// startSession, useIdentity or setCookie). It logs its own events once
// (a login, a refused credential, with session ids and tickets only as
// session.Redact); the handler logs the refusal it answers
// (frontend.rejected).
//
// # Concurrency and speed
//
// One method value serves every request of its virtual proxy at once: it
// holds only what its constructor gave it, read-only; per-request state
// lives in rq and in the verdict it returns. State shared across requests
// (the credential index, ended anonymous sessions) lives on the Proxy and
// is safe for concurrent use. login runs on every request: return the
// verdict as a value, and allocate nothing when the request carries no
// credential of this method.
type loginMethod interface {
	login(rq *request, known verdict) (verdict, error)
}

// A credentialTaker is a loginMethod whose credential must not reach a
// back end even when another method authenticates the request (the JWT
// bearer token next to a ticket). authenticate calls takeCredential
// before asking any method; it removes the credential from rq.r and keeps
// it in rq.credential for login.
type credentialTaker interface {
	takeCredential(rq *request)
}

// vpLoginMethods makes the login method of each authentication_method
// value; a nil constructor is a virtual proxy without one (tickets and
// the session cookie only). Adding a method is one file with its
// constructor, and its line here.
var vpLoginMethods = map[string]func(p *Proxy, vp *virtualProxy) (loginMethod, error){
	config.AuthTicket:        nil,
	config.AuthHeaderStatic:  newHeaderLogin,
	config.AuthHeaderDynamic: newHeaderLogin,
	config.AuthJWT:           newJWTLogin,
	config.AuthOIDC:          newOIDCLogin,
	config.AuthSAML:          newSAMLLogin,
	config.AuthWindows:       newWindowsLogin,
}

// verdictKind says what a login method found.
type verdictKind uint8

const (
	// noVerdict: the request carries no credential of this method; the
	// identity known so far stands.
	noVerdict verdictKind = iota
	// identified: verdict.session is who sent the request.
	identified
	// refused: the credential is wrong; the handler answers
	// verdict.status with verdict.error and verdict.reason (and
	// verdict.challenge as WWW-Authenticate), and no other method is
	// asked.
	refused
	// failedLogin: the credential is wrong, but the methods after this
	// one are still asked: one of them may know the client. If one does,
	// a GET navigation is redirected to its URL, from which the method
	// has removed the credential; otherwise no anonymous session is
	// given (a failed login is no wish to be anonymous) and the handler
	// sends a navigation to the login module and answers anything else
	// with verdict.status, error and reason.
	failedLogin
	// answered: a response of the method's own: verdict.status, with
	// verdict.location as Location (a redirect) and verdict.challenge as
	// WWW-Authenticate when set; it is not cached.
	answered
)

// A verdict is what a login method found out about a request. It is a
// value: the cookie path returns one without allocating.
type verdict struct {
	kind verdictKind
	// session is who sent the request (identified).
	session session.Session
	// anonymous: session is an anonymous one, carried by its cookie and
	// not in the store (anonymous.go).
	anonymous bool
	// status, error and reason answer a refused or failed login, or a
	// method's own answer.
	status        int
	error, reason string
	// challenge is the WWW-Authenticate value of a refusal or an answer.
	challenge string
	// retry, on a refusal, is a URL of this proxy where a browser may
	// log in again; the refusal page links to it.
	retry string
	// location is where an answer sends the client.
	location string
}

// identity is the verdict that s sent the request.
func identity(s session.Session) verdict { return verdict{kind: identified, session: s} }

// refusal is the verdict that the request's credential is refused, with
// status, a short error and a reason that tells the caller what to fix.
func refusal(status int, msg, reason string) verdict {
	return verdict{kind: refused, status: status, error: msg, reason: reason}
}

// redirect is the verdict that answers with a redirect to location.
func redirect(location string) verdict {
	return verdict{kind: answered, status: http.StatusFound, location: location}
}
