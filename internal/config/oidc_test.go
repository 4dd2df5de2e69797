package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func oidcVP(lines string) string {
	return authVP("    authentication_method: oidc\n    oidc:\n" + lines)
}

func TestOIDCDefaultsAndSecretFromFileOrEnv(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	c, err := Parse([]byte(oidcVP(`      metadata_uri: https://login.example.com/t/v2.0/.well-known/openid-configuration
      client_id: app
      client_secret_file: ` + secret + `
      realm: ACME
      scope: email
`)))
	if err != nil {
		t.Fatal(err)
	}
	o := c.VirtualProxies[0].Auth.OIDC
	if o.ClientSecret != "s3cret" || o.Issuer != "https://login.example.com/t/v2.0" || o.SubClaim != "sub" ||
		o.GroupsClaim != "groups" || o.Scope != "openid email" {
		t.Errorf("parsed %+v", o)
	}
	t.Setenv("OPENQPS_TEST_OIDC_SECRET", "from-env")
	c, err = Parse([]byte(oidcVP("      metadata_uri: https://idp.example.com\n      client_id: app\n      client_secret_env: OPENQPS_TEST_OIDC_SECRET\n      realm: ACME\n")))
	if err != nil {
		t.Fatal(err)
	}
	if o := c.VirtualProxies[0].Auth.OIDC; o.ClientSecret != "from-env" || o.Scope != DefaultOIDCScope {
		t.Errorf("parsed %+v", o)
	}
}

func TestOIDCErrorsNameKey(t *testing.T) {
	base := "      metadata_uri: https://idp.example.com\n      client_id: app\n      realm: ACME\n"
	for _, c := range []struct{ yaml, want string }{
		{base, "oidc.client_secret_file: oidc needs the client secret"},
		{base + "      client_secret_env: OPENQPS_TEST_UNSET_VARIABLE\n", "oidc.client_secret_env: the environment variable OPENQPS_TEST_UNSET_VARIABLE is empty or unset"},
		{base + "      client_secret_env: A\n      client_secret_file: B\n", "not both"},
		{"      client_id: app\n      realm: ACME\n      client_secret_env: HOME\n", "oidc.metadata_uri: oidc needs the provider's discovery document"},
		{"      metadata_uri: https://idp.example.com/?x=1\n      client_id: app\n      realm: ACME\n      client_secret_env: HOME\n", "no query"},
		{"      metadata_uri: https://idp.example.com\n      client_id: app\n      client_secret_env: HOME\n", "oidc.realm"},
		{"      metadata_uri: https://idp.example.com\n      client_id: app\n      realm: A\\B\n      client_secret_env: HOME\n", "oidc.realm"},
		{"      metadata_uri: https://idp.example.com\n      realm: ACME\n      client_secret_env: HOME\n", "oidc.client_id"},
	} {
		_, err := Parse([]byte(oidcVP(c.yaml)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.want)
		}
		if err != nil && os.Getenv("HOME") != "" && strings.Contains(err.Error(), os.Getenv("HOME")) {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
	_, err := Parse([]byte(authVP("    anonymous_access: allow\n    authentication_method: oidc\n    oidc:\n" + base + "      client_secret_env: HOME\n")))
	if err == nil || !strings.Contains(err.Error(), "anonymous_access must be none") {
		t.Errorf("anonymous with oidc: %v", err)
	}
}

func TestJWKSURIChecked(t *testing.T) {
	for _, c := range []struct{ uri, want string }{
		{"https://idp.example.com/keys", ""},
		{"http://127.0.0.1:8080/keys", ""},
		{"http://idp.example.com/keys", "plain http"},
		{"ftp://idp.example.com/keys", "https URL"},
	} {
		_, err := Parse([]byte(authVP("    authentication_method: jwt\n    jwt:\n      jwks_uri: " + c.uri + "\n")))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.uri, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want %q", c.uri, err, c.want)
		}
	}
	_, err := Parse([]byte(authVP("    authentication_method: jwt\n    jwt:\n      jwks_uri: https://idp.example.com/k\n      public_key: /x.pem\n")))
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("both keys: %v", err)
	}
}
