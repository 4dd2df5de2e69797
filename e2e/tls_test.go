package e2e

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/pki"
	"github.com/openqps/openqps/internal/qpsapi"
)

// TestUserSuppliedCertificates runs openqps with certificates it did not
// create (as exported from an existing Qlik site): login modules holding
// that site's client certificate keep working, openqps's own are refused.
func TestUserSuppliedCertificates(t *testing.T) {
	siteDir := t.TempDir()
	site, _, err := pki.Ensure(siteDir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := start(t, func(c *config.Config) {
		c.TLS = config.TLS{
			CA:   filepath.Join(siteDir, "root.pem"),
			Cert: filepath.Join(siteDir, "server.pem"),
			Key:  filepath.Join(siteDir, "server_key.pem"),
		}
	})
	if got := o.Certs.Dir; got != "" {
		t.Errorf("certificates were generated into %q", got)
	}
	siteClient := qpsapi.NewClient("https://"+o.APIAddr, site.ClientTLS())
	defer siteClient.CloseIdleConnections()
	if _, err := siteClient.AddSession(context.Background(), "sessionvp", userReq("DOMAIN", "User1", randomHex(16))); err != nil {
		t.Fatalf("the site's own client certificate was refused: %v", err)
	}
	other, _, err := pki.Ensure(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stranger := qpsapi.NewClient("https://"+o.APIAddr, other.ClientTLS())
	defer stranger.CloseIdleConnections()
	if err := stranger.Alive(context.Background()); err == nil {
		t.Error("a client certificate of another CA was accepted")
	}
}
