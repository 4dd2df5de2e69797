package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func authVP(extra string) string {
	return `
virtual_proxies:
  - prefix: vp
    backends: ["http://127.0.0.1:9000"]
` + extra
}

func TestAuthDefaults(t *testing.T) {
	c, err := Parse([]byte(authVP("")))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.VirtualProxies[0].Auth; a.AuthenticationMethod != AuthTicket || a.AnonymousAccess != AnonymousNone {
		t.Errorf("defaults %+v", a)
	}
}

func TestAuthErrorsNameKeyAndLine(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"    authentication_method: kerberos\n", `line 5: virtual_proxies[0].authentication_method: "kerberos": use ticket, header_static, header_dynamic, jwt, oidc, saml or windows`},
		{"    anonymous_access: sometimes\n", `line 5: virtual_proxies[0].anonymous_access: "sometimes": use none, allow or always`},
		{"    authentication_method: header_static\n    static_user_directory: ACME\n", `virtual_proxies[0].header_name: header_static needs the header`},
		{"    authentication_method: header_static\n    header_name: X-Qlik-User\n    static_user_directory: ACME\n", `line 6: virtual_proxies[0].header_name: "X-Qlik-User": X-Qlik-* headers are reserved`},
		{"    authentication_method: header_static\n    header_name: x-qlik-security\n    static_user_directory: ACME\n", `X-Qlik-* headers are reserved`},
		{"    authentication_method: header_static\n    header_name: \"Remote User\"\n    static_user_directory: ACME\n", `"Remote User" is not a valid header name`},
		{"    authentication_method: header_static\n    header_name: Cookie\n    static_user_directory: ACME\n", `"Cookie" cannot carry a user name`},
		{"    authentication_method: header_static\n    header_name: X-Remote-User\n", `static_user_directory: header_static needs the directory`},
		{"    authentication_method: header_dynamic\n    header_name: X-Remote-User\n    dynamic_user_directory: '$ud$id'\n", `has nothing between $ud and $id`},
		{"    authentication_method: header_dynamic\n    header_name: X-Remote-User\n    dynamic_user_directory: '$id'\n", `$ud (directory) and $id (user id) once each`},
		{"    authentication_method: header_dynamic\n    header_name: X-Remote-User\n    dynamic_user_directory: '$ud\\$id\\$id'\n", `once each`},
		{"    authentication_method: jwt\n", `virtual_proxies[0].jwt.public_key: jwt needs the PEM certificate or public key`},
		{"    authentication_method: jwt\n    jwt: {public_key: /nonexistent/key.pem}\n", `line 6: virtual_proxies[0].jwt.public_key: read /nonexistent/key.pem: no such file or directory`},
		{"    authentication_method: jwt\n    jwt: {public_key: " + writeFile(t, "junk.pem", "not pem") + "}\n", `holds no PEM CERTIFICATE or PUBLIC KEY block`},
		{"    authentication_method: jwt\n    jwt: {public_key: " + writeKey(t, "PUBLIC KEY", ed25519Key(t)) + "}\n", `cannot verify RS256/384/512 or ES256/384/512 tokens`},
		{"    authentication_method: jwt\n    jwt: {public_key: " + writeKey(t, "PUBLIC KEY", rsaKey(t)) + ", user_directory_claim: '[ACME'}\n", `a constant directory is written in brackets`},
		{"    jwt: {userid_claim: sub}\n", `key userid_claim is not a known key`},
		{"    authentication_method: jwt\n    jwt: {public_key: " + writeKey(t, "PUBLIC KEY", rsaKey(t)) + ", max_lifetime: 10s}\n", `virtual_proxies[0].jwt.max_lifetime: 10s: the longest lifetime of an accepted token must be a minute or more`},
	} {
		_, err := Parse([]byte(authVP(c.yaml)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.yaml, err, c.want)
		}
	}
}

func TestAuthValid(t *testing.T) {
	rsaPub := rsaKey(t)
	for _, yaml := range []string{
		"    authentication_method: header_static\n    header_name: X-Remote-User\n    static_user_directory: ACME\n    anonymous_access: allow\n",
		"    authentication_method: header_dynamic\n    header_name: X-Remote-User\n    dynamic_user_directory: '$ud\\$id'\n",
		"    authentication_method: jwt\n    jwt: {public_key: " + writeKey(t, "PUBLIC KEY", rsaPub) + "}\n",
		"    authentication_method: jwt\n    jwt: {public_key: " + writeKey(t, "CERTIFICATE", ecCert(t)) + ", user_directory_claim: '[ACME]', attribute_claims: {groups: Group}, audience: qlik}\n",
		"    authentication_method: jwt\n    jwt: {public_key: " + writeKey(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(rsaPub.(*rsa.PublicKey))) + "}\n",
		"    authentication_method: jwt\n    jwt: {public_key: " + writeKey(t, "PUBLIC KEY", rsaPub) + ", max_lifetime: 720h, forward_token: true}\n",
	} {
		c, err := Parse([]byte(authVP(yaml)))
		if err != nil {
			t.Errorf("%s: %v", yaml, err)
			continue
		}
		if a := c.VirtualProxies[0].Auth; a.AuthenticationMethod == AuthJWT && (a.JWT.Key == nil || a.JWT.UserIDClaim != "userId" || a.JWT.MaxLifetime < time.Minute) {
			t.Errorf("%s: JWT settings %+v", yaml, a.JWT)
		}
	}
	p, err := ParseUserPattern(`[$id]@$ud`)
	if err != nil || p != (UserPattern{Prefix: "[", Separator: "]@", Suffix: "", DirectoryFirst: false}) {
		t.Errorf("ParseUserPattern: %+v %v", p, err)
	}
}

func writeFile(t *testing.T, name, content string) string {
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeKey writes a PEM block; a public key given as a crypto key is
// marshalled as PKIX.
func writeKey(t *testing.T, typ string, key any) string {
	der, ok := key.([]byte)
	if !ok {
		var err error
		if der, err = x509.MarshalPKIXPublicKey(key); err != nil {
			t.Fatal(err)
		}
	}
	return writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
}

func rsaKey(t *testing.T) any {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func ed25519Key(t *testing.T) any {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	return pub
}

func ecCert(t *testing.T) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jwt"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
