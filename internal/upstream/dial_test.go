package upstream

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// clientCertificate is a self-signed client certificate for cn.
func clientCertificate(t *testing.T, cn string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert
}

// TestMutualTLSBackEnd: a back end that requires a client certificate
// gets the one Options.TLS names, verified against the roots and server
// name Options.TLS names (not the host dialled), through both transports;
// without the certificate, or with other roots, the request fails.
func TestMutualTLSBackEnd(t *testing.T) {
	clientCert, clientLeaf := clientCertificate(t, "QlikClient")
	clients := x509.NewCertPool()
	clients.AddCert(clientLeaf)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	url := srv.URL // https://127.0.0.1:port; the certificate also names example.com

	forEachKind(t, func(t *testing.T, kind Kind) {
		site := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}, ServerName: "example.com"}
		u := New(Options{Kind: kind, TLS: site})
		defer u.CloseIdleConnections()
		if _, body := get(t, u, "GET", url+"/", nil); body != "hello QlikClient" {
			t.Errorf("body %q", body)
		}
		site.Certificates = nil // cloned by New: changes after it do not count
		if _, body := get(t, u, "GET", url+"/", nil); body != "hello QlikClient" {
			t.Errorf("after the caller changed its config: body %q", body)
		}

		for name, cfg := range map[string]*tls.Config{
			"no client certificate": {RootCAs: roots, ServerName: "example.com"},
			"other roots":           {RootCAs: x509.NewCertPool(), Certificates: []tls.Certificate{clientCert}, ServerName: "example.com"},
			"other server name":     {RootCAs: roots, Certificates: []tls.Certificate{clientCert}, ServerName: "qlik.example"},
		} {
			u := New(Options{Kind: kind, TLS: cfg})
			resp, err := u.RoundTrip(t.Context(), request(t, "GET", url+"/", nil))
			if err == nil {
				// TLS 1.3: a missing client certificate is refused after
				// the client's handshake is done, on the first read.
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Errorf("%s: the request succeeded", name)
			}
			u.CloseIdleConnections()
		}
	})
}
