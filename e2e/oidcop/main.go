// Command oidcop is the OpenID provider of openqps's end-to-end tests:
// zitadel/oidc's example provider (its op, storage and login packages,
// unchanged) bound to 127.0.0.1, configured from a JSON file instead of
// its built-in users and clients. It adds what the tests need and the
// example leaves out: userinfo claims (email, name) and a groups claim in
// the ID token, a signing key the test supplies (so that the tests can
// also present tokens signed by the provider's own key with claims the
// provider would never issue), post-logout redirect URIs, and an issuer
// other than its own address (when a test puts a proxy in front of it).
//
// It prints "issuer=<url> listen=<host:port>" on its first line of output
// once it listens.
package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

type providerConfig struct {
	// Listen is the address to bind, 127.0.0.1:0 for a free port.
	Listen string `json:"listen"`
	// Issuer, when set, is the issuer to announce; by default the bound
	// address.
	Issuer string `json:"issuer"`
	// SigningKey is a PEM file with the RSA private key that signs the
	// tokens; KeyID is its kid.
	SigningKey string `json:"signing_key"`
	KeyID      string `json:"key_id"`
	Clients    []struct {
		ID           string   `json:"id"`
		Secret       string   `json:"secret"`
		RedirectURIs []string `json:"redirect_uris"`
		// RedirectURIGlobs are path.Match patterns, for a front end
		// whose port the test learns only once it listens.
		RedirectURIGlobs []string `json:"redirect_uri_globs"`
		// PostLogoutRedirectURIs are path.Match patterns too.
		PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	} `json:"clients"`
	Users []struct {
		ID        string   `json:"id"`
		Username  string   `json:"username"`
		Password  string   `json:"password"`
		FirstName string   `json:"first_name"`
		LastName  string   `json:"last_name"`
		Email     string   `json:"email"`
		Groups    []string `json:"groups"`
	} `json:"users"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "oidcop:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 2 {
		return errors.New("usage: oidcop config.json")
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		return err
	}
	var cfg providerConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return err
	}
	key, err := readKey(cfg.SigningKey)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = "http://" + ln.Addr().String() + "/"
	}

	users := userStore{byID: map[string]*storage.User{}, byName: map[string]*storage.User{}}
	groups := map[string][]string{}
	for _, u := range cfg.Users {
		su := &storage.User{ID: u.ID, Username: u.Username, Password: u.Password, FirstName: u.FirstName,
			LastName: u.LastName, Email: u.Email, EmailVerified: true}
		users.byID[u.ID], users.byName[u.Username] = su, su
		groups[u.ID] = u.Groups
	}
	postLogout, globs := map[string][]string{}, map[string][]string{}
	for _, c := range cfg.Clients {
		storage.RegisterClients(storage.WebClient(c.ID, c.Secret, c.RedirectURIs...))
		postLogout[c.ID], globs[c.ID] = c.PostLogoutRedirectURIs, c.RedirectURIGlobs
	}
	st := &providerStorage{
		Storage: storage.NewStorage(users),
		key:     signingKey{key: key, id: cfg.KeyID},
		groups:  groups, postLogout: postLogout, globs: globs,
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	router := exampleop.SetupServer(issuer, st, logger, false)
	fmt.Printf("issuer=%s listen=%s\n", issuer, ln.Addr())
	return http.Serve(ln, router)
}

func readKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA key", path)
	}
	return rk, nil
}

type userStore struct{ byID, byName map[string]*storage.User }

func (u userStore) GetUserByID(id string) *storage.User         { return u.byID[id] }
func (u userStore) GetUserByUsername(name string) *storage.User { return u.byName[name] }
func (u userStore) ExampleClientID() string                     { return storage.ServiceUserID }

// providerStorage is the example's storage with the test's key, groups
// and logout URIs.
type providerStorage struct {
	*storage.Storage
	key        signingKey
	groups     map[string][]string
	postLogout map[string][]string
	globs      map[string][]string
}

func (s *providerStorage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *providerStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *providerStorage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

func (s *providerStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return client{Client: c, postLogout: s.postLogout[id], globs: s.globs[id]}, nil
}

func (s *providerStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	if g := s.groups[req.GetSubject()]; g != nil {
		info.AppendClaims("groups", g)
	}
	return nil
}

// client copies the userinfo claims into the ID token (Entra ID, Okta
// and ADFS put name, email and groups there) and allows the test's
// post-logout redirect URIs.
type client struct {
	op.Client
	postLogout, globs []string
}

func (c client) RedirectURIGlobs() []string           { return c.globs }
func (c client) PostLogoutRedirectURIGlobs() []string { return c.postLogout }

func (c client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c client) PostLogoutRedirectURIs() []string     { return c.postLogout }

type signingKey struct {
	key *rsa.PrivateKey
	id  string
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }
