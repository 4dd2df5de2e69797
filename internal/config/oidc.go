package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// OIDC configures authentication_method oidc: the authorization code
// flow with PKCE against one OpenID provider, as QPS's OIDC virtual
// proxies do it (Qlik's "OIDC virtual proxy settings"). Each virtual
// proxy has its own provider and client.
type OIDC struct {
	// MetadataURI is the provider's discovery document,
	// https://idp/.well-known/openid-configuration, or its issuer URL
	// (QPS: "OpenID Connect metadata URI").
	MetadataURI string `yaml:"metadata_uri"`
	// ClientID is openqps's client at the provider.
	ClientID string `yaml:"client_id"`
	// ClientSecretFile and ClientSecretEnv name where the client secret
	// is read from, a file or an environment variable: never the YAML,
	// which is shared and versioned.
	ClientSecretFile string `yaml:"client_secret_file"`
	ClientSecretEnv  string `yaml:"client_secret_env"`
	// Realm is the user directory of every user of this provider (QPS:
	// "Realm").
	Realm string `yaml:"realm"`
	// Claim names (QPS: "sub", "name", "groups", "email", "client_id",
	// "picture"): SubClaim is the user id (default sub); the others, when
	// present in the ID token, become the attributes name, group (one per
	// element), email, client_id and picture.
	SubClaim      string `yaml:"sub_claim"`
	NameClaim     string `yaml:"name_claim"`
	GroupsClaim   string `yaml:"groups_claim"`
	EmailClaim    string `yaml:"email_claim"`
	ClientIDClaim string `yaml:"client_id_claim"`
	PictureClaim  string `yaml:"picture_claim"`
	// Scope is the space-separated scope requested (QPS: "scope");
	// openid is always included.
	Scope string `yaml:"scope"`
	// AttributeClaims maps further claims to session attributes, e.g.
	// {department: Department}; a list claim gives one attribute each
	// (QPS: "Attribute mapping").
	AttributeClaims map[string]string `yaml:"attribute_claims"`
	// EndSession makes the personal logout also send the browser to the
	// provider's end_session_endpoint (RP-initiated logout).
	EndSession bool `yaml:"end_session"`

	// ClientSecret is read from ClientSecretFile or ClientSecretEnv by
	// validation. It is never logged.
	ClientSecret string `yaml:"-"`
	// Issuer is MetadataURI without its /.well-known/openid-configuration,
	// filled in by validation: the issuer the discovery document and every
	// ID token must name.
	Issuer string `yaml:"-"`
}

// AuthOIDC is the authentication method of OpenID Connect virtual
// proxies.
const AuthOIDC = "oidc"

// OIDCCallbackPath is QPS's redirect URI under a virtual proxy's prefix:
// https://host/<prefix>/oidcauthn is what the provider's client lists.
const OIDCCallbackPath = "/oidcauthn"

// Default claim names and scope of OIDC virtual proxies, as QPS fills
// them in.
const (
	DefaultOIDCScope = "openid profile email"
)

const wellKnown = "/.well-known/openid-configuration"

func (v *validator) oidcAuth(at string, vp *VirtualProxy) {
	o := &vp.Auth.OIDC
	at += ".oidc"
	setDefault := func(p *string, d string) {
		if *p == "" {
			*p = d
		}
	}
	setDefault(&o.SubClaim, "sub")
	setDefault(&o.NameClaim, "name")
	setDefault(&o.GroupsClaim, "groups")
	setDefault(&o.EmailClaim, "email")
	setDefault(&o.ClientIDClaim, "client_id")
	setDefault(&o.PictureClaim, "picture")
	setDefault(&o.Scope, DefaultOIDCScope)
	if !strings.Contains(" "+o.Scope+" ", " openid ") {
		o.Scope = "openid " + o.Scope
	}
	u, err := url.Parse(o.MetadataURI)
	switch {
	case o.MetadataURI == "":
		v.fail(at+".metadata_uri", "oidc needs the provider's discovery document, e.g. metadata_uri: https://login.microsoftonline.com/<tenant>/v2.0/.well-known/openid-configuration")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		v.fail(at+".metadata_uri", fmt.Sprintf("%q: give the https URL of the provider's .well-known/openid-configuration (no query, no user)", o.MetadataURI))
	default:
		o.Issuer = strings.TrimSuffix(o.MetadataURI, wellKnown)
	}
	if strings.TrimSpace(o.ClientID) == "" {
		v.fail(at+".client_id", "oidc needs the client id registered at the provider, e.g. client_id: 6f1c0d2e-…")
	}
	if d := o.Realm; strings.TrimSpace(d) == "" || strings.ContainsRune(d, '\\') {
		v.fail(at+".realm", "oidc needs the user directory of the provider's users (not blank, no backslash), e.g. realm: ACME")
	}
	switch {
	case o.ClientSecretFile != "" && o.ClientSecretEnv != "":
		v.fail(at+".client_secret_file", "give the client secret once: client_secret_file or client_secret_env, not both")
	case o.ClientSecretFile != "":
		data, err := os.ReadFile(o.ClientSecretFile)
		if err != nil {
			v.fail(at+".client_secret_file", fmt.Sprintf("read the client secret: %v", err))
			break
		}
		o.ClientSecret = strings.TrimSpace(string(data))
		if o.ClientSecret == "" {
			v.fail(at+".client_secret_file", fmt.Sprintf("%s is empty: write the client secret the provider issued into it", o.ClientSecretFile))
		}
	case o.ClientSecretEnv != "":
		o.ClientSecret = strings.TrimSpace(os.Getenv(o.ClientSecretEnv))
		if o.ClientSecret == "" {
			v.fail(at+".client_secret_env", fmt.Sprintf("the environment variable %s is empty or unset: set it to the client secret the provider issued", o.ClientSecretEnv))
		}
	default:
		v.fail(at+".client_secret_file", "oidc needs the client secret, read from a file (client_secret_file) or an environment variable (client_secret_env); it is never written in the YAML")
	}
	for claim, attr := range o.AttributeClaims {
		if claim == "" || strings.TrimSpace(attr) == "" {
			v.fail(at+".attribute_claims", fmt.Sprintf("%q: %q: map a claim name to an attribute name, e.g. {department: Department}", claim, attr))
		}
	}
	if vp.Auth.AnonymousAccess != AnonymousNone {
		v.fail(at, "oidc logs every user in at the provider: anonymous_access must be none")
	}
}
