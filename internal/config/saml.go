package config

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/openqps/openqps/internal/pki"
)

// AuthSAML is the authentication method of SAML virtual proxies.
const AuthSAML = "saml"

// SAML configures authentication_method saml, with the settings of a QPS
// SAML virtual proxy.
type SAML struct {
	// IdPMetadata is the identity provider's metadata: a file, or an
	// https URL read at start and on every reload.
	IdPMetadata string `yaml:"idp_metadata"`
	// IdPMetadataCertificate, when set, is a PEM certificate that must
	// have signed the metadata: metadata fetched from a URL is otherwise
	// only as trustworthy as the TLS connection it came over.
	IdPMetadataCertificate string `yaml:"idp_metadata_certificate"`
	// EntityID is the service provider's entity ID (QPS: "SAML entity
	// ID"); the IdP puts it in the Audience of its assertions.
	EntityID string `yaml:"entity_id"`
	// HostURI is the address browsers use (QPS: "SAML host URI"), e.g.
	// https://qlik.acme.test; the assertion consumer URL is
	// HostURI/{prefix}/samlauthn/. Empty: frontend.public_url, else the
	// request's own address when it is one of this proxy's.
	HostURI string `yaml:"host_uri"`
	// UserIDAttribute names the SAML attribute holding the user id (QPS:
	// "SAML attribute for user ID"); empty or "NameID" is the subject's
	// NameID.
	UserIDAttribute string `yaml:"user_id_attribute"`
	// UserDirectoryAttribute names the attribute holding the user
	// directory, or a constant in brackets, e.g. "[ACME]" (QPS: "SAML
	// attribute for user directory").
	UserDirectoryAttribute string `yaml:"user_directory_attribute"`
	// AttributeMapping maps SAML attribute names to session attribute
	// names (QPS: "SAML attribute mapping"); a multi-valued attribute
	// gives one session attribute per value.
	AttributeMapping map[string]string `yaml:"attribute_mapping"`
	// SigningAlgorithm signs the AuthnRequests: sha256 (default) or sha1
	// (QPS: "SAML signing algorithm").
	SigningAlgorithm string `yaml:"signing_algorithm"`
	// SignAuthnRequests signs the AuthnRequests with the service
	// provider's key (default true).
	SignAuthnRequests *bool `yaml:"sign_authn_requests"`
	// Certificate and Key are the service provider's PEM certificate and
	// RSA key (signing requests, decrypting assertions). Empty: openqps
	// makes a key pair in data_dir/saml on first start.
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
	// AllowIdPInitiated accepts responses that answer no request of
	// openqps (IdP-initiated login); off by default, as such a response
	// is bound to no browser.
	AllowIdPInitiated bool `yaml:"allow_idp_initiated"`
	// LandingPage is where an IdP-initiated login lands, a path of this
	// virtual proxy (default /{prefix}/hub/).
	LandingPage string `yaml:"landing_page"`
	// ClockSkew is how far the IdP's clock may be off (default 1m).
	ClockSkew time.Duration `yaml:"clock_skew"`

	// IdP is the parsed IdPMetadata, filled in by validation.
	IdP SAMLIdentityProvider `yaml:"-"`
	// DataDir is the data_dir in force, set when the front end is built
	// (serve --data-dir overrides the file's): a key pair openqps makes
	// is kept in DataDir/saml.
	DataDir string `yaml:"-"`
}

// SAMLIdentityProvider is what openqps uses of an IdP's metadata.
type SAMLIdentityProvider struct {
	EntityID string
	// SSOURL takes AuthnRequests by the HTTP-Redirect binding.
	SSOURL string
	// SLOURL takes LogoutRequests by the HTTP-Redirect binding; empty
	// when the IdP offers none.
	SLOURL string
	// Certificates verify the IdP's signatures.
	Certificates []*x509.Certificate
}

// SAML signing algorithms.
const (
	SAMLSHA256 = "sha256"
	SAMLSHA1   = "sha1"
)

// DefaultSAMLClockSkew is saml.clock_skew's default.
const DefaultSAMLClockSkew = time.Minute

// maxSAMLMetadata bounds the IdP metadata openqps reads.
const maxSAMLMetadata = 4 << 20

func (v *validator) samlAuth(at string, vp *VirtualProxy) {
	s := &vp.Auth.SAML
	at += ".saml"
	if s.EntityID == "" {
		v.fail(at+".entity_id", "saml needs the service provider's entity ID, the name the IdP knows openqps by, e.g. entity_id: https://qlik.acme.test/saml")
	}
	v.optionalURL(at+".host_uri", s.HostURI)
	switch strings.ToLower(s.SigningAlgorithm) {
	case "", SAMLSHA256, "sha-256":
		s.SigningAlgorithm = SAMLSHA256
	case SAMLSHA1, "sha-1":
		s.SigningAlgorithm = SAMLSHA1
	default:
		v.fail(at+".signing_algorithm", fmt.Sprintf("%q: use sha256 or sha1", s.SigningAlgorithm))
	}
	if s.SignAuthnRequests == nil {
		yes := true
		s.SignAuthnRequests = &yes
	}
	if (s.Certificate == "") != (s.Key == "") {
		v.fail(at+".certificate", "set both certificate and key, or neither (openqps then makes its own in data_dir/saml)")
	}
	if d, ok := strings.CutPrefix(s.UserDirectoryAttribute, "["); ok {
		if d, ok = strings.CutSuffix(d, "]"); !ok || strings.TrimSpace(d) == "" || strings.ContainsRune(d, '\\') {
			v.fail(at+".user_directory_attribute", fmt.Sprintf("%q: a constant directory is written in brackets, e.g. \"[ACME]\"", s.UserDirectoryAttribute))
		}
	} else if s.UserDirectoryAttribute == "" {
		v.fail(at+".user_directory_attribute", "name the attribute holding the user directory, or a constant in brackets, e.g. user_directory_attribute: \"[ACME]\"")
	}
	for attr, name := range s.AttributeMapping {
		if attr == "" || strings.TrimSpace(name) == "" {
			v.fail(at+".attribute_mapping", fmt.Sprintf("%q: %q: map a SAML attribute name to a session attribute name, e.g. {groups: Group}", attr, name))
		}
	}
	if s.LandingPage == "" {
		s.LandingPage = "/hub/"
		if vp.Prefix != "" {
			s.LandingPage = "/" + vp.Prefix + "/hub/"
		}
	} else if !strings.HasPrefix(s.LandingPage, "/") || strings.HasPrefix(s.LandingPage, "//") {
		v.fail(at+".landing_page", fmt.Sprintf("%q: the landing page is a path on this proxy, e.g. /hub/", s.LandingPage))
	}
	switch {
	case s.ClockSkew == 0:
		s.ClockSkew = DefaultSAMLClockSkew
	case s.ClockSkew < 0 || s.ClockSkew > 10*time.Minute:
		v.fail(at+".clock_skew", fmt.Sprintf("%s: allow between 0 and 10m", s.ClockSkew))
	}
	if s.IdPMetadata == "" {
		v.fail(at+".idp_metadata", "saml needs the identity provider's metadata, a file or an https URL, e.g. idp_metadata: /etc/openqps/idp-metadata.xml")
		return
	}
	var signer *x509.Certificate
	if s.IdPMetadataCertificate != "" {
		certs, err := pki.ReadCertificates(s.IdPMetadataCertificate)
		if err != nil {
			v.fail(at+".idp_metadata_certificate", err.Error())
			return
		}
		signer = certs[0]
	}
	idp, err := LoadSAMLMetadata(s.IdPMetadata, signer)
	if err != nil {
		v.fail(at+".idp_metadata", err.Error())
		return
	}
	s.IdP = idp
}

// LoadSAMLMetadata reads an IdP's metadata from a file or an http(s) URL
// and, when signer is not nil, checks that signer signed it.
func LoadSAMLMetadata(source string, signer *x509.Certificate) (SAMLIdentityProvider, error) {
	var data []byte
	var err error
	if u, perr := url.Parse(source); perr == nil && (u.Scheme == "https" || u.Scheme == "http") {
		data, err = fetchSAMLMetadata(source)
	} else {
		data, err = os.ReadFile(source)
		if err != nil {
			err = fmt.Errorf("read %s: %w", source, errors.Unwrap(err))
		}
	}
	if err != nil {
		return SAMLIdentityProvider{}, err
	}
	idp, err := ParseSAMLMetadata(data, signer)
	if err != nil {
		return SAMLIdentityProvider{}, fmt.Errorf("%s: %w", source, err)
	}
	return idp, nil
}

func fetchSAMLMetadata(u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch IdP metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch IdP metadata %s: %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSAMLMetadata+1))
	if err != nil {
		return nil, fmt.Errorf("fetch IdP metadata %s: %w", u, err)
	}
	if len(data) > maxSAMLMetadata {
		return nil, fmt.Errorf("IdP metadata %s is larger than %d bytes", u, maxSAMLMetadata)
	}
	return data, nil
}

// samlMetadata is the part of an EntityDescriptor openqps reads.
type samlMetadata struct {
	XMLName  xml.Name `xml:"urn:oasis:names:tc:SAML:2.0:metadata EntityDescriptor"`
	EntityID string   `xml:"entityID,attr"`
	IdP      []struct {
		Keys []struct {
			Use  string `xml:"use,attr"`
			Cert string `xml:"KeyInfo>X509Data>X509Certificate"`
		} `xml:"KeyDescriptor"`
		SSO []samlEndpoint `xml:"SingleSignOnService"`
		SLO []samlEndpoint `xml:"SingleLogoutService"`
	} `xml:"IDPSSODescriptor"`
}

type samlEndpoint struct {
	Binding  string `xml:"Binding,attr"`
	Location string `xml:"Location,attr"`
}

const samlRedirectBinding = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"

// ParseSAMLMetadata reads an IdP's EntityDescriptor. A document type
// declaration is refused: metadata has none, and entities are how XML
// parsers are made to read files or expand without bound.
func ParseSAMLMetadata(data []byte, signer *x509.Certificate) (SAMLIdentityProvider, error) {
	if err := CheckPlainXML(data); err != nil {
		return SAMLIdentityProvider{}, err
	}
	if signer != nil {
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(data); err != nil {
			return SAMLIdentityProvider{}, fmt.Errorf("IdP metadata is not XML: %w", err)
		}
		store := &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{signer}}
		signed, err := dsig.NewDefaultValidationContext(store).Validate(doc.Root())
		if err != nil {
			return SAMLIdentityProvider{}, fmt.Errorf("IdP metadata is not signed by idp_metadata_certificate %s: %w", signer.Subject, err)
		}
		signedDoc := etree.NewDocument()
		signedDoc.SetRoot(signed)
		if data, err = signedDoc.WriteToBytes(); err != nil {
			return SAMLIdentityProvider{}, err
		}
	}
	var md samlMetadata
	if err := xml.Unmarshal(data, &md); err != nil {
		return SAMLIdentityProvider{}, fmt.Errorf("not a SAML EntityDescriptor: %w", err)
	}
	if len(md.IdP) != 1 {
		return SAMLIdentityProvider{}, fmt.Errorf("the metadata of %q holds %d IDPSSODescriptor elements; openqps needs exactly one", md.EntityID, len(md.IdP))
	}
	idp := SAMLIdentityProvider{EntityID: md.EntityID}
	if idp.EntityID == "" {
		return SAMLIdentityProvider{}, errors.New("the EntityDescriptor has no entityID")
	}
	d := md.IdP[0]
	for _, e := range d.SSO {
		if e.Binding == samlRedirectBinding {
			idp.SSOURL = e.Location
		}
	}
	for _, e := range d.SLO {
		if e.Binding == samlRedirectBinding {
			idp.SLOURL = e.Location
		}
	}
	if idp.SSOURL == "" {
		return SAMLIdentityProvider{}, fmt.Errorf("IdP %q offers no SingleSignOnService with the HTTP-Redirect binding", idp.EntityID)
	}
	for _, k := range d.Keys {
		if k.Use == "encryption" {
			continue
		}
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(k.Cert), ""))
		if err != nil {
			return SAMLIdentityProvider{}, fmt.Errorf("IdP %q: a signing certificate is not base64: %w", idp.EntityID, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return SAMLIdentityProvider{}, fmt.Errorf("IdP %q: signing certificate: %w", idp.EntityID, err)
		}
		idp.Certificates = append(idp.Certificates, cert)
	}
	if len(idp.Certificates) == 0 {
		return SAMLIdentityProvider{}, fmt.Errorf("IdP %q publishes no signing certificate (KeyDescriptor use=\"signing\")", idp.EntityID)
	}
	return idp, nil
}

// CheckPlainXML refuses XML that holds a document type declaration
// (DTD, entities: XXE, billion laughs), a comment or a processing
// instruction other than the XML declaration. SAML messages carry none
// of them; a comment inside a signed value is how the 2018 NameID attacks
// truncated user names (exclusive canonicalisation drops comments, so
// the signature still verifies).
func CheckPlainXML(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	first := true
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return errors.New("the XML holds a document type declaration (<!DOCTYPE or <!ENTITY); SAML messages have none")
		case xml.Comment:
			return errors.New("the XML holds a comment; SAML messages from identity providers have none")
		case xml.ProcInst:
			if !first || t.Target != "xml" {
				return fmt.Errorf("the XML holds a processing instruction <?%s?>; SAML messages have none", t.Target)
			}
		case xml.CharData:
			if first && len(bytes.TrimSpace(t)) == 0 {
				continue
			}
		}
		first = false
	}
}
