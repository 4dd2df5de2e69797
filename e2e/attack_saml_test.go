package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session/redis/redistest"
)

// samlAttack is one crafted answer to a real login: forge turns the
// SAMLResponse XML that SimpleSAMLphp issued for mallory (whose password
// the attacker has) into what the attacker posts to the assertion
// consumer service.
type samlAttack struct {
	name  string
	forge func(t *testing.T, idp *samlIdP, xml string) string
	// raw, when set, is the form body posted instead (forge unused).
	raw func(form url.Values) string
	// want lists the acceptable statuses; 0 means 403.
	want []int
	// noCookie posts from a browser that never went to the IdP.
	noCookie bool
	// before runs between the IdP's answer and the post.
	before func(o *openqps)
}

const (
	nsSAML  = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsSAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsDSig  = "http://www.w3.org/2000/09/xmldsig#"
)

func TestAttackSAMLResponses(t *testing.T) {
	o, idp := startSAML(t, "", false)
	// The control rows first: a response re-signed with the IdP's key,
	// unchanged, logs in; so the rows below fail for what they change,
	// not for how the test signs.
	for _, h2 := range []bool{false, true} {
		for _, ctl := range []samlAttack{
			{name: "control: as issued", forge: func(_ *testing.T, _ *samlIdP, x string) string { return x }},
			{name: "control: assertion re-signed, response unsigned", forge: resignAssertion(func(*etree.Element) {})},
			{name: "control: both re-signed", forge: resignBoth(func(*etree.Element, *etree.Element) {})},
		} {
			t.Run(proto(h2)+"/"+ctl.name, func(t *testing.T) {
				status, _ := samlAttackPost(t, o, idp, ctl, h2)
				if status != http.StatusSeeOther {
					t.Fatalf("status %d, want 303 to the target: the control must log in", status)
				}
			})
		}
	}
	for _, h2 := range []bool{false, true} {
		for _, a := range samlAttackRows() {
			t.Run(proto(h2)+"/"+a.name, func(t *testing.T) {
				before := len(o.Backend.requests())
				status, c := samlAttackPost(t, o, idp, a, h2)
				want := a.want
				if want == nil {
					want = []int{http.StatusForbidden}
				}
				if !containsInt(want, status) {
					t.Errorf("status %d, want one of %v", status, want)
				}
				if n := len(o.Backend.requests()); n != before {
					t.Errorf("the back end got %d requests during the attack", n-before)
				}
				// The browser holds no session: a navigation goes to the IdP.
				c.Transport.(*http.Transport).CloseIdleConnections()
				resp, _ := get(t, c, o.frontURL("/saml/hub/"))
				if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), idp.URL) {
					t.Errorf("after the attack, GET /saml/hub/: %d to %q, want 302 to the IdP", resp.StatusCode, resp.Header.Get("Location"))
				}
			})
		}
	}
}

func proto(h2 bool) string {
	if h2 {
		return "h2"
	}
	return "http1"
}

// samlAttackPost logs mallory in at the IdP, forges the answer and posts
// it; it returns the status and the browser, which follows no redirect
// of openqps afterwards.
func samlAttackPost(t *testing.T, o *openqps, idp *samlIdP, a samlAttack, h2 bool) (int, *http.Client) {
	t.Helper()
	o.Clock.Set(time.Now()) // a row may have moved it
	c := o.samlBrowser(t, h2)
	action, form := samlLoginAtIdP(t, c, o.frontURL("/saml/hub/"), "mallory", "mallorypw")
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if a.noCookie {
		c = o.samlBrowser(t, h2)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	if a.before != nil {
		a.before(o)
	}
	var body string
	if a.raw != nil {
		body = a.raw(form)
	} else {
		forged := a.forge(t, idp, decodeSAMLResponse(t, form.Get("SAMLResponse")))
		form.Set("SAMLResponse", base64.StdEncoding.EncodeToString([]byte(forged)))
		body = form.Encode()
	}
	req, _ := http.NewRequest(http.MethodPost, action, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if h2 && resp.ProtoMajor != 2 {
		t.Fatalf("proto %s, want HTTP/2", resp.Proto)
	}
	if strings.Contains(string(page), "<saml") || strings.Contains(string(page), "root:x:") {
		t.Errorf("the refusal shows the XML or a file:\n%.500s", page)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "X-Qlik-Session-saml" && ck.Value != "" && resp.StatusCode != http.StatusSeeOther {
			t.Errorf("a refused response set a session cookie")
		}
	}
	return resp.StatusCode, c
}

func samlAttackRows() []samlAttack {
	toAlice := func(el *etree.Element) { el.FindElement(".//NameID").SetText("alice") }
	return []samlAttack{
		// Tampering without a key.
		{name: "NameID changed, signatures kept", forge: edit(func(r *etree.Element) { toAlice(assertionOf(r)) })},
		{name: "NameID changed, response signature removed", forge: edit(func(r *etree.Element) { dropSignature(r); toAlice(assertionOf(r)) })},
		{name: "both signatures removed", forge: edit(func(r *etree.Element) { dropSignature(r); dropSignature(assertionOf(r)) })},
		{name: "unsigned evil assertion added to a signed response", forge: edit(func(r *etree.Element) {
			r.AddChild(evilAssertion(assertionOf(r)))
		})},
		{name: "unsigned evil assertion before the signed one, response unsigned", forge: edit(func(r *etree.Element) {
			dropSignature(r)
			as := assertionOf(r)
			r.InsertChildAt(as.Index(), evilAssertion(as))
		})},
		{name: "unsigned evil assertion after the signed one, response unsigned", forge: edit(func(r *etree.Element) {
			dropSignature(r)
			r.AddChild(evilAssertion(assertionOf(r)))
		})},
		{name: "response signature moved onto an evil assertion", forge: edit(func(r *etree.Element) {
			sig := signatureOf(r)
			r.RemoveChild(sig)
			as := assertionOf(r)
			evil := evilAssertion(as)
			evil.AddChild(sig)
			r.RemoveChild(as)
			r.AddChild(evil)
		})},
		// Signature wrapping, the XSW1-XSW8 shapes of "On Breaking SAML"
		// (Somorovsky et al., 2012), as SAML Raider builds them.
		{name: "XSW1 signed response inside its own signature, evil response outside", forge: edit(xsw1)},
		{name: "XSW2 signed response before its signature, evil response outside", forge: edit(xsw2)},
		{name: "XSW3 evil assertion before the signed one", forge: edit(func(r *etree.Element) {
			dropSignature(r)
			as := assertionOf(r)
			r.InsertChildAt(as.Index(), evilAssertion(as))
		})},
		{name: "XSW4 signed assertion inside the evil one", forge: edit(func(r *etree.Element) {
			dropSignature(r)
			as := assertionOf(r)
			evil := evilAssertion(as)
			r.RemoveChild(as)
			evil.AddChild(as)
			r.AddChild(evil)
		})},
		{name: "XSW5 evil assertion keeps the signature, original copy appended", forge: edit(func(r *etree.Element) {
			dropSignature(r)
			as := assertionOf(r)
			orig := as.Copy()
			dropSignature(orig)
			toAlice(as) // same ID and signature, other content
			r.AddChild(orig)
		})},
		{name: "XSW6 original inside the signature of the evil assertion", forge: edit(func(r *etree.Element) {
			dropSignature(r)
			as := assertionOf(r)
			orig := as.Copy()
			dropSignature(orig)
			toAlice(as)
			as.FindElement("./Signature").AddChild(orig)
		})},
		{name: "XSW7 original inside Extensions, evil assertion beside", forge: edit(func(r *etree.Element) {
			dropSignature(r)
			as := assertionOf(r)
			ext := etree.NewElement("samlp:Extensions")
			r.RemoveChild(as)
			ext.AddChild(as)
			r.InsertChildAt(2, ext)
			r.AddChild(evilAssertion(as))
		})},
		{name: "XSW8 original inside an Object of the evil assertion's signature", forge: edit(func(r *etree.Element) {
			dropSignature(r)
			as := assertionOf(r)
			orig := as.Copy()
			dropSignature(orig)
			toAlice(as)
			obj := as.FindElement("./Signature").CreateElement("ds:Object")
			obj.AddChild(orig)
		})},
		// Comments and processing instructions in signed values:
		// exclusive canonicalisation drops comments, so the signature
		// still verifies; a parser that reads the first text node would
		// log in as "mal".
		{name: "comment inside the signed NameID", forge: func(t *testing.T, _ *samlIdP, x string) string {
			return mustReplace(t, x, ">mallory</saml:NameID>", ">mal<!---->lory</saml:NameID>")
		}},
		{name: "comment inside a signed attribute value", forge: func(t *testing.T, _ *samlIdP, x string) string {
			return mustReplace(t, x, ">guests<", ">gue<!-- admins -->sts<")
		}},
		{name: "processing instruction inside the NameID", forge: func(t *testing.T, _ *samlIdP, x string) string {
			return mustReplace(t, x, ">mallory</saml:NameID>", ">mal<?x y?>lory</saml:NameID>")
		}},
		{name: "comment after signing in an IdP-signed NameID (2018 shape)", forge: func(t *testing.T, idp *samlIdP, x string) string {
			// The IdP vouches for admin@acme.test.evil.test, an address
			// the attacker registered; the comment leaves the signature
			// valid and a first-text-node reader with admin@acme.test.
			signed := resignAssertion(func(as *etree.Element) { as.FindElement(".//NameID").SetText("admin@acme.test.evil.test") })(t, idp, x)
			return mustReplace(t, signed, "admin@acme.test.evil.test<", "admin@acme.test<!---->.evil.test<")
		}},
		// Checks of a correctly signed assertion (re-signed with the
		// IdP's key after the change).
		{name: "wrong Audience", forge: resignAssertion(func(as *etree.Element) { as.FindElement(".//Audience").SetText("https://other-sp.test/") })},
		{name: "no AudienceRestriction", forge: resignAssertion(func(as *etree.Element) {
			c := as.FindElement(".//Conditions")
			c.RemoveChild(c.FindElement("./AudienceRestriction"))
		})},
		{name: "wrong Recipient", forge: resignAssertion(func(as *etree.Element) {
			as.FindElement(".//SubjectConfirmationData").CreateAttr("Recipient", "https://other-sp.test/acs")
		})},
		{name: "wrong Destination", forge: resignBoth(func(r, _ *etree.Element) { r.CreateAttr("Destination", "https://other-sp.test/acs") })},
		{name: "no Destination", forge: resignBoth(func(r, _ *etree.Element) { r.RemoveAttr("Destination") })},
		{name: "wrong Issuer", forge: resignBoth(func(r, as *etree.Element) {
			r.FindElement("./Issuer").SetText("https://evil-idp.test/")
			as.FindElement("./Issuer").SetText("https://evil-idp.test/")
		})},
		{name: "expired NotOnOrAfter", forge: resignAssertion(func(as *etree.Element) {
			past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
			as.FindElement(".//Conditions").CreateAttr("NotOnOrAfter", past)
		})},
		{name: "expired SubjectConfirmationData", forge: resignAssertion(func(as *etree.Element) {
			past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
			as.FindElement(".//SubjectConfirmationData").CreateAttr("NotOnOrAfter", past)
		})},
		{name: "NotBefore in the future", forge: resignAssertion(func(as *etree.Element) {
			future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
			as.FindElement(".//Conditions").CreateAttr("NotBefore", future)
		})},
		{name: "issued response posted after openqps's clock moved 10 minutes", forge: identity, before: func(o *openqps) { o.Clock.Advance(10 * time.Minute) }},
		{name: "InResponseTo of no request", forge: resignBoth(func(r, as *etree.Element) {
			r.CreateAttr("InResponseTo", "_0123456789abcdef")
			as.FindElement(".//SubjectConfirmationData").CreateAttr("InResponseTo", "_0123456789abcdef")
		})},
		{name: "InResponseTo of the response and of the assertion differ", forge: resignBoth(func(r, _ *etree.Element) {
			r.CreateAttr("InResponseTo", "_0123456789abcdef")
		})},
		{name: "IdP-initiated (no InResponseTo) while not allowed", forge: resignBoth(func(r, as *etree.Element) {
			r.RemoveAttr("InResponseTo")
			as.FindElement(".//SubjectConfirmationData").RemoveAttr("InResponseTo")
		})},
		{name: "valid response posted by another browser (no login cookie)", forge: identity, noCookie: true},
		{name: "valid response with another RelayState", forge: identity, raw: func(f url.Values) string {
			f.Set("RelayState", "AAAAAAAAAAAAAAAAAAAAAA")
			return f.Encode()
		}},
		{name: "signed by another key, its certificate inline", forge: signedByStranger},
		// Parser attacks.
		{name: "DTD with an external entity (XXE) in the NameID", forge: func(t *testing.T, _ *samlIdP, x string) string {
			x = mustReplace(t, x, ">mallory</saml:NameID>", ">&xxe;</saml:NameID>")
			return `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + stripXMLDecl(x)
		}},
		{name: "billion laughs", forge: func(t *testing.T, _ *samlIdP, x string) string {
			dtd := `<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">`
			prev := "a"
			for i := 0; i < 9; i++ {
				n := string(rune('b' + i))
				dtd += `<!ENTITY ` + n + ` "` + strings.Repeat("&"+prev+";", 10) + `">`
				prev = n
			}
			x = mustReplace(t, x, ">mallory</saml:NameID>", ">&"+prev+";</saml:NameID>")
			return `<?xml version="1.0"?>` + dtd + `]>` + stripXMLDecl(x)
		}},
		{name: "10 MB body", raw: func(f url.Values) string {
			return f.Encode() + "&pad=" + strings.Repeat("A", 10<<20)
		}, want: []int{http.StatusRequestEntityTooLarge}},
		{name: "not base64", raw: func(f url.Values) string {
			f.Set("SAMLResponse", "<samlp:Response>")
			return f.Encode()
		}},
		{name: "deflated response (not the POST binding)", forge: identity, raw: func(f url.Values) string {
			f.Set("SAMLResponse", base64.StdEncoding.EncodeToString([]byte{0x78, 0x9c, 0x01, 0x02}))
			return f.Encode()
		}},
	}
}

// TestAttackSAMLReplay posts a response that logged in once again, from
// a thief's browser holding the same cookies.
func TestAttackSAMLReplay(t *testing.T) {
	o, _ := startSAML(t, "", false)
	for _, h2 := range []bool{false, true} {
		t.Run(proto(h2), func(t *testing.T) {
			c := o.samlBrowser(t, h2)
			action, form := samlLoginAtIdP(t, c, o.frontURL("/saml/hub/"), "mallory", "mallorypw")
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			// The attacker captured the form and the login cookie; the
			// victim's browser posts first.
			jarCookies := c.Jar.Cookies(samlURL(t, action))
			resp, err := c.PostForm(action, form)
			if err != nil || resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("first post: %v %v", resp.StatusCode, err)
			}
			resp.Body.Close()
			before := len(o.Backend.requests())
			thief := o.samlBrowser(t, h2)
			thief.CheckRedirect = c.CheckRedirect
			thief.Jar.SetCookies(samlURL(t, action), jarCookies)
			resp, err = thief.PostForm(action, form)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "already used") {
				t.Fatalf("replay: %d %.300s, want 403 already used", resp.StatusCode, body)
			}
			if len(o.Backend.requests()) != before {
				t.Fatal("the replay reached the back end")
			}
		})
	}
}

// TestAttackSAMLReplayAcrossNodes posts one response to two openqps nodes
// sharing Redis, behind one public name (saml.host_uri).
func TestAttackSAMLReplayAcrossNodes(t *testing.T) {
	idp := startSAMLIdP(t)
	srv := redistest.Start(t)
	edit := func(c *config.Config) {
		storesRedisAt(srv.Addr)(c)
		c.VirtualProxies = append(c.VirtualProxies, samlVP(t, idp, "saml", c.VirtualProxies[0].Backends[0], "      host_uri: https://qlik.acme.test\n"))
	}
	a, b := start(t, edit), start(t, edit)
	// Both nodes have the same SP key when they share data_dir in real
	// deployments; here each made its own, so the IdP is told node a's.
	sp := a.samlSP(t, "saml", false)
	sp.ACS = "https://qlik.acme.test/saml/samlauthn/"
	idp.addSP(t, sp)
	c := a.samlBrowser(t, false)
	// One browser, two nodes behind one name: it trusts both CAs.
	roots := x509.NewCertPool()
	roots.AddCert(a.Certs.CA)
	roots.AddCert(b.Certs.CA)
	c.Transport.(*http.Transport).TLSClientConfig.RootCAs = roots
	_, form := samlLoginAtIdP(t, c, a.frontURL("/saml/hub/"), "mallory", "mallorypw")
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	post := func(o *openqps) (int, string) {
		resp, err := c.PostForm(o.frontURL("/saml/samlauthn/"), form)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	// The thief captured the form and the browser's login cookie.
	captured := c.Jar.Cookies(samlURL(t, a.frontURL("/saml/samlauthn/")))
	if s, body := post(a); s != http.StatusSeeOther {
		t.Fatalf("node a: %d, want 303; %.300s", s, body)
	}
	c.Jar.SetCookies(samlURL(t, b.frontURL("/saml/samlauthn/")), captured)
	if s, body := post(b); s != http.StatusForbidden || !strings.Contains(body, "already used") {
		t.Fatalf("replay on node b: %d %.300s, want 403 already used", s, body)
	}
	if n := len(b.Backend.requests()); n != 0 {
		t.Fatalf("node b's back end got %d requests", n)
	}
}

func samlURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func identity(_ *testing.T, _ *samlIdP, x string) string { return x }

func mustReplace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("the IdP's response has no %q:\n%.1500s", old, s)
	}
	return strings.Replace(s, old, new, 1)
}

func stripXMLDecl(x string) string {
	if strings.HasPrefix(x, "<?xml") {
		return x[strings.Index(x, "?>")+2:]
	}
	return x
}

func parseXML(t *testing.T, x string) *etree.Document {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(x); err != nil {
		t.Fatal(err)
	}
	return doc
}

func writeXML(t *testing.T, doc *etree.Document) string {
	t.Helper()
	s, err := doc.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// edit applies a change to the response without any key.
func edit(change func(response *etree.Element)) func(*testing.T, *samlIdP, string) string {
	return func(t *testing.T, _ *samlIdP, x string) string {
		doc := parseXML(t, x)
		change(doc.Root())
		return writeXML(t, doc)
	}
}

func assertionOf(r *etree.Element) *etree.Element { return r.FindElement("./Assertion") }

func signatureOf(el *etree.Element) *etree.Element { return el.FindElement("./Signature") }

func dropSignature(el *etree.Element) {
	if s := signatureOf(el); s != nil {
		el.RemoveChild(s)
	}
}

// evilAssertion is an unsigned copy of as for alice, with its own ID.
func evilAssertion(as *etree.Element) *etree.Element {
	evil := as.Copy()
	dropSignature(evil)
	evil.CreateAttr("ID", "_evil"+randomHex(8))
	evil.FindElement(".//NameID").SetText("alice")
	return evil
}

func xsw1(r *etree.Element) {
	orig := r.Copy()
	sig := signatureOf(r)
	dropSignature(orig)
	r.CreateAttr("ID", "_evil"+randomHex(8))
	r.RemoveChild(assertionOf(r))
	r.AddChild(evilAssertion(assertionOf(orig)))
	sig.AddChild(orig)
}

func xsw2(r *etree.Element) {
	orig := r.Copy()
	sig := signatureOf(r)
	dropSignature(orig)
	r.CreateAttr("ID", "_evil"+randomHex(8))
	r.RemoveChild(assertionOf(r))
	r.AddChild(evilAssertion(assertionOf(orig)))
	r.InsertChildAt(sig.Index(), orig)
}

// idpSigner signs as SimpleSAMLphp does: RSA-SHA256, exclusive
// canonicalisation, the certificate in KeyInfo.
func idpSigner(key *rsa.PrivateKey, cert []byte) *dsig.SigningContext {
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{cert}, PrivateKey: key}))
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod)
	return ctx
}

// sign replaces el (a child of its parent, or the root) with its signed
// form, the signature its last child.
func sign(t *testing.T, ctx *dsig.SigningContext, doc *etree.Document, el *etree.Element) *etree.Element {
	t.Helper()
	dropSignature(el)
	for _, ns := range [][2]string{{"saml", nsSAML}, {"samlp", nsSAMLP}} {
		if el.SelectAttr("xmlns:"+ns[0]) == nil {
			el.CreateAttr("xmlns:"+ns[0], ns[1])
		}
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	if parent := el.Parent(); parent != nil && parent != &doc.Element {
		i := el.Index()
		parent.RemoveChild(el)
		parent.InsertChildAt(i, signed)
	} else {
		doc.SetRoot(signed)
	}
	return signed
}

// resignAssertion changes the assertion, signs it with the IdP's key and
// drops the response's signature (openqps takes a signed assertion in an
// unsigned response, as the standard allows).
func resignAssertion(change func(as *etree.Element)) func(*testing.T, *samlIdP, string) string {
	return func(t *testing.T, idp *samlIdP, x string) string {
		doc := parseXML(t, x)
		dropSignature(doc.Root())
		as := assertionOf(doc.Root())
		change(as)
		sign(t, idpSigner(idp.Key, idp.Cert.Raw), doc, as)
		return writeXML(t, doc)
	}
}

// resignBoth changes response and assertion and signs both with the
// IdP's key, the assertion first.
func resignBoth(change func(response, as *etree.Element)) func(*testing.T, *samlIdP, string) string {
	return func(t *testing.T, idp *samlIdP, x string) string {
		doc := parseXML(t, x)
		ctx := idpSigner(idp.Key, idp.Cert.Raw)
		as := assertionOf(doc.Root())
		change(doc.Root(), as)
		sign(t, ctx, doc, as)
		sign(t, ctx, doc, doc.Root())
		return writeXML(t, doc)
	}
}

// signedByStranger re-signs everything with a key of the attacker's,
// its certificate in KeyInfo: only the IdP's metadata certificates count.
func signedByStranger(t *testing.T, _ *samlIdP, x string) string {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "SimpleSAMLphp test IdP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	doc := parseXML(t, x)
	ctx := idpSigner(key, der)
	as := assertionOf(doc.Root())
	as.FindElement(".//NameID").SetText("alice")
	sign(t, ctx, doc, as)
	sign(t, ctx, doc, doc.Root())
	return writeXML(t, doc)
}

// TestAttackSAMLIdPInitiatedLandsOnTheLandingPage: with
// allow_idp_initiated, a response that answers no request logs in, from
// a browser that never went to the IdP, and lands on the configured page
// whatever RelayState says — never an open redirect.
func TestAttackSAMLIdPInitiatedLandsOnTheLandingPage(t *testing.T) {
	o, idp := startSAML(t, "      allow_idp_initiated: true\n", false)
	unsolicited := resignBoth(func(r, as *etree.Element) {
		r.RemoveAttr("InResponseTo")
		as.FindElement(".//SubjectConfirmationData").RemoveAttr("InResponseTo")
	})
	for _, relay := range []string{"", "https://evil.test/", "//evil.test/x", "/saml/sense/app/abc"} {
		o.Clock.Set(time.Now())
		action, form := samlLoginAtIdP(t, o.samlBrowser(t, false), o.frontURL("/saml/hub/"), "mallory", "mallorypw")
		fresh := o.samlBrowser(t, false)
		fresh.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		form.Set("SAMLResponse", base64.StdEncoding.EncodeToString([]byte(unsolicited(t, idp, decodeSAMLResponse(t, form.Get("SAMLResponse"))))))
		form.Set("RelayState", relay)
		resp, err := fresh.PostForm(action, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/saml/hub/" {
			t.Errorf("RelayState %q: %d to %q, want 303 to /saml/hub/", relay, resp.StatusCode, loc)
		}
	}
}
