package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/pki"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/server"
	"github.com/openqps/openqps/internal/session/redis/redistest"
)

// TestAttackTableAPICertificates: certificates that chain to openqps's CA
// but are no client certificates are refused at the TLS handshake of the
// trusted API, over HTTP/1.1 and HTTP/2, and change nothing.
func TestAttackTableAPICertificates(t *testing.T) {
	srv, logs := startLogged(t, t.TempDir())
	o := &openqps{Server: srv, API: qpsapi.NewClient("https://"+srv.APIAddr, srv.Certs.ClientTLS())}
	defer o.API.CloseIdleConnections()
	caKey := readCAKey(t, o)
	caAsClient := tls.Certificate{Certificate: [][]byte{o.Certs.CA.Raw}, PrivateKey: caKey, Leaf: o.Certs.CA}
	signed := func(usages ...x509.ExtKeyUsage) func(*testing.T, *openqps) []tls.Certificate {
		return func(t *testing.T, o *openqps) []tls.Certificate {
			return []tls.Certificate{signWithCA(t, o.Certs.CA, caKey, usages)}
		}
	}
	body := `{"UserDirectory":"DOMAIN","UserId":"Mallory","SessionId":"` + randomHex(16) + `"}`
	xrf := []string{"X-Qlik-Xrfkey", "abcdefghijklmnop", "Content-Type", "application/json"}
	rows := []attackAPIRow{
		{name: "the CA certificate, with its key", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body,
			certs: func(*testing.T, *openqps) []tls.Certificate { return []tls.Certificate{caAsClient} }},
		{name: "the CA certificate on GET alive", method: "GET", path: "/qps/alive" + attackXrf, header: xrf,
			certs: func(*testing.T, *openqps) []tls.Certificate { return []tls.Certificate{caAsClient} }},
		{name: "CA-signed, no extended key usage", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body, certs: signed()},
		{name: "CA-signed, server authentication only", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body, certs: signed(x509.ExtKeyUsageServerAuth)},
		{name: "CA-signed, any extended key usage", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body, certs: signed(x509.ExtKeyUsageAny)},
		{name: "CA-signed, email protection only", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body, certs: signed(x509.ExtKeyUsageEmailProtection)},
		// The control: a certificate with the client-authentication
		// usage (and another) is a login module.
		{name: "CA-signed, client and server authentication", method: "GET", path: "/qps/alive" + attackXrf, header: xrf, want: 200,
			certs: signed(x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)},
	}
	for _, proto := range []string{"http/1.1", "h2"} {
		for _, row := range rows {
			t.Run(proto+"/"+row.name, func(t *testing.T) {
				const refused = `level=WARN msg="trusted API refused a client certificate"`
				before := strings.Count(logs.String(), refused)
				status, err := sendAPIRow(t, o, proto, row)
				// crypto/tls itself refuses a certificate whose usages
				// exclude client authentication (net/http logs that at
				// debug level); the rest is refused, and logged, by
				// openqps.
				want := 1
				if row.want != 0 || refusedByCryptoTLS[row.name] {
					want = 0
				}
				if n := strings.Count(logs.String(), refused) - before; n != want {
					t.Errorf("%d log lines say the client certificate was refused, want %d", n, want)
				}
				switch {
				case row.want == 0 && err == nil:
					t.Errorf("answered %d, want the TLS handshake refused", status)
				case row.want != 0 && (err != nil || status != row.want):
					t.Errorf("status %d, err %v; want %d", status, err, row.want)
				}
			})
		}
	}
	list, err := o.API.UserSessions(context.Background(), "sessionvp", "DOMAIN", "Mallory")
	if err != nil || len(list) != 0 {
		t.Errorf("sessions of Mallory after the refused certificates: %v, %v", list, err)
	}
}

// refusedByCryptoTLS are the rows of TestAttackTableAPICertificates that
// crypto/tls refuses before openqps sees the certificate.
var refusedByCryptoTLS = map[string]bool{
	"CA-signed, server authentication only": true,
	"CA-signed, email protection only":      true,
}

// sendAPIRow sends row to the trusted API over a new connection that
// negotiates proto ("http/1.1" or "h2").
func sendAPIRow(t *testing.T, o *openqps, proto string, row attackAPIRow) (int, error) {
	t.Helper()
	certs := []tls.Certificate{o.Certs.Client}
	if row.certs != nil {
		certs = row.certs(t, o)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.Certs.CAPool, Certificates: certs}, Protocols: new(http.Protocols)}
	if proto == "h2" {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(row.method, o.apiURL(row.path), strings.NewReader(row.body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(row.header); i += 2 {
		req.Header.Set(row.header[i], row.header[i+1])
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != map[string]int{"h2": 2, "http/1.1": 1}[proto] {
		t.Errorf("answered over %s, want %s", resp.Proto, proto)
	}
	return resp.StatusCode, nil
}

// readCAKey reads the CA's private key from where openqps keeps it.
func readCAKey(t *testing.T, o *openqps) crypto.Signer {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(o.Certs.Dir, "root.pem"), filepath.Join(o.Certs.CADir, "root_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return pair.PrivateKey.(crypto.Signer)
}

// signWithCA issues a certificate with the given extended key usages.
func signWithCA(t *testing.T, ca *x509.Certificate, caKey crypto.Signer, usages []x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "QlikClient"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// caKeyFiles returns the files in dir that hold the private key of ca,
// as a PEM block or inside a PKCS #12 file.
func caKeyFiles(t *testing.T, dir string, ca *x509.Certificate) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	caPub := ca.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	var found []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var keys []any
		for rest := data; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			for _, parse := range []func([]byte) (any, error){
				x509.ParsePKCS8PrivateKey,
				func(b []byte) (any, error) { return x509.ParseECPrivateKey(b) },
				func(b []byte) (any, error) { return x509.ParsePKCS1PrivateKey(b) },
			} {
				if k, err := parse(block.Bytes); err == nil {
					keys = append(keys, k)
				}
			}
		}
		if k, _, _, err := pkcs12.DecodeChain(data, pki.PFXPassword); err == nil {
			keys = append(keys, k)
		}
		for _, k := range keys {
			if s, ok := k.(crypto.Signer); ok && caPub.Equal(s.Public()) {
				found = append(found, p)
			}
		}
	}
	return found
}

// TestAttackExportedCertificatesHoldNoCAKey: the folder users copy to
// login-module hosts holds no private key of the CA, after a first start
// and after a start on a data directory of the old layout, whose
// certificates keep working.
func TestAttackExportedCertificatesHoldNoCAKey(t *testing.T) {
	t.Run("new data directory", func(t *testing.T) {
		o := start(t, nil)
		if found := caKeyFiles(t, o.Certs.Dir, o.Certs.CA); len(found) != 0 {
			t.Errorf("the CA key is in the exported folder: %v", found)
		}
		if found := caKeyFiles(t, o.Certs.CADir, o.Certs.CA); len(found) != 1 {
			t.Errorf("CA key files in %s: %v, want one", o.Certs.CADir, found)
		}
	})
	t.Run("data directory of the old layout", func(t *testing.T) {
		dataDir := t.TempDir()
		old, _, err := pki.Ensure(pki.CertsDir(dataDir), pki.CADir(dataDir))
		if err != nil {
			t.Fatal(err)
		}
		oldKey := filepath.Join(old.Dir, "root_key.pem")
		if err := os.Rename(filepath.Join(old.CADir, "root_key.pem"), oldKey); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(old.CADir); err != nil {
			t.Fatal(err)
		}
		clientPEM, _ := os.ReadFile(filepath.Join(old.Dir, "client.pem"))

		srv, logs := startLogged(t, dataDir)

		if found := caKeyFiles(t, srv.Certs.Dir, srv.Certs.CA); len(found) != 0 {
			t.Errorf("the CA key is still in the exported folder: %v", found)
		}
		if found := caKeyFiles(t, pki.CADir(dataDir), srv.Certs.CA); len(found) != 1 {
			t.Errorf("CA key files in %s: %v, want one", pki.CADir(dataDir), found)
		}
		if !strings.Contains(logs.String(), "moved the CA private key") || !strings.Contains(logs.String(), oldKey) {
			t.Errorf("no log line names the move from %s:\n%s", oldKey, logs.String())
		}
		if now, _ := os.ReadFile(filepath.Join(srv.Certs.Dir, "client.pem")); !bytes.Equal(now, clientPEM) {
			t.Error("client.pem changed: login modules holding the old copy would be locked out")
		}
		o := &openqps{Server: srv}
		status, err := sendAPIRow(t, o, "http/1.1", attackAPIRow{method: "GET", path: "/qps/alive" + attackXrf,
			header: []string{"X-Qlik-Xrfkey", "abcdefghijklmnop"}, certs: func(*testing.T, *openqps) []tls.Certificate { return []tls.Certificate{old.Client} }})
		if err != nil || status != http.StatusOK {
			t.Errorf("the client certificate of the old layout: status %d, err %v; want 200", status, err)
		}
	})
}

// startLogged starts openqps on dataDir with a memory store and returns
// it with everything it logs (the audit log included).
func startLogged(t *testing.T, dataDir string) (*server.Server, *lockedBuffer) {
	t.Helper()
	logs := new(lockedBuffer)
	cfg, err := config.Parse([]byte("data_dir: " + dataDir + "\nfrontend: {listen: \"127.0.0.1:0\"}\napi: {listen: \"127.0.0.1:0\"}\nstore: {type: memory}\n" +
		"log: {level: debug}\nvirtual_proxies:\n" +
		"  - prefix: \"\"\n    authentication_module_redirect_uri: " + loginModuleURI + "\n    backends: [\"http://127.0.0.1:9\"]\n" +
		"  - prefix: sessionvp\n    authentication_module_redirect_uri: " + loginModuleURI + "\n    backends: [\"http://127.0.0.1:9\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(context.Background(), server.Options{Config: cfg, Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), AuditOut: logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv, logs
}

// TestAttackMistypedAPIPathLogsNoSessionID: a login module that puts a
// live session id in the wrong place of an API path gets 404, and
// neither the process log nor the audit log holds the id — only its
// hash.
func TestAttackMistypedAPIPathLogsNoSessionID(t *testing.T) {
	srv, logs := startLogged(t, t.TempDir())
	o := &openqps{Server: srv, API: qpsapi.NewClient("https://"+srv.APIAddr, srv.Certs.ClientTLS())}
	defer o.API.CloseIdleConnections()
	xrf := []string{"X-Qlik-Xrfkey", "abcdefghijklmnop", "Content-Type", "application/json"}
	paths := []struct{ method, path string }{
		{"DELETE", "/qps/sessionvp/{id}"},               // "session/" forgotten
		{"GET", "/qps/sesion/{id}"},                     // resource mistyped
		{"GET", "/qps/sessionvp/sesion/{id}"},           // resource mistyped after a prefix
		{"GET", "/qps/sessions/{id}/"},                  // plural
		{"GET", "/qps/{id}"},                            // the id as the resource
		{"GET", "/qps/{id}/session"},                    // the id as the prefix
		{"DELETE", "/qps/user/{id}"},                    // the user API with one argument
		{"POST", "/qps/sessionvp/ticket/{id}"},          // an argument where none belongs
		{"GET", "/qpss/session/{id}"},                   // not under /qps/
		{"GET", "/QPS/SessionVP/Session%2F{id}/extra"},  // an encoded slash
		{"GET", "/qps/sessionvp/session/{id}/{id}"},     // one segment too many
		{"GET", "/qps/sessionvp/session%20{id}"},        // glued to the resource
		{"DELETE", "/qps/sessionvp/user/DOMAIN/{id}/x"}, // the user API with three arguments
	}
	for _, proto := range []string{"http/1.1", "h2"} {
		for _, p := range paths {
			t.Run(proto+" "+p.method+" "+p.path, func(t *testing.T) {
				id := "aa051074-13a1-4f2a-" + randomHex(8)
				rejected := strings.Count(logs.String(), "event=api.rejected")
				o.addSession(t, "sessionvp", "DOMAIN", "Victim", id)
				path := strings.ReplaceAll(p.path, "{id}", id)
				status, err := sendAPIRow(t, o, proto, attackAPIRow{method: p.method, path: path + attackXrf, header: xrf, body: "{}"})
				if err != nil || status != http.StatusNotFound {
					t.Errorf("status %d, err %v; want 404", status, err)
				}
				if got, err := o.API.GetSession(context.Background(), "sessionvp", id); err != nil || got == nil {
					t.Errorf("the victim's session after the mistyped call: %v, %v", got, err)
				}
				// The rejection is logged once (and audited)...
				if n := strings.Count(logs.String(), "event=api.rejected"); n != rejected+1 {
					t.Errorf("%d api.rejected lines in the process log, want %d", n, rejected+1)
				}
				// ...and no line holds the id.
				for _, l := range strings.Split(logs.String(), "\n") {
					if strings.Contains(l, id) {
						t.Errorf("a log line holds the session id: %s", l)
					}
				}
			})
		}
	}
}

// lockedBuffer is a log sink that the server's goroutines may write to
// while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAttackHungRedisStopsServingCachedSessions: a node whose Redis
// hangs without closing the connection (SIGSTOP: a hung server, or a
// partition) cannot hear of deletes made through other nodes, so it must
// stop serving a cached session and answer 503 within about the store
// timeout (2 s), not keep serving it. The bound asserted leaves room for
// a loaded CI machine; the figures are logged.
func TestAttackHungRedisStopsServingCachedSessions(t *testing.T) {
	srv := redistest.Start(t)
	o := start(t, storesRedisAt(srv.Addr))
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	storesWantUser(t, o, id, "/sessionvp/hub/", "User1")
	storesWantUser(t, o, id, "/sessionvp/hub/", "User1") // now from the cache

	srv.Pause()
	paused := time.Now()
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)
	var lastServed, first503 time.Duration
	for {
		resp, body := get(t, b, o.frontURL("/sessionvp/hub/"))
		if resp.StatusCode == http.StatusServiceUnavailable {
			first503 = time.Since(paused)
			if !strings.Contains(body, "session store unavailable") {
				t.Errorf("503 body %q, want it to name the session store", body)
			}
			break
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("while redis hangs: %d %q, want 200 from the cache or 503", resp.StatusCode, body)
		}
		lastServed = time.Since(paused)
		if lastServed > 10*time.Second {
			t.Fatalf("the cached session is still served %v after redis hung", lastServed)
		}
	}
	t.Logf("redis hung: cached session served until %v, first 503 at %v", lastServed, first503)
	if first503 > 3*time.Second {
		t.Errorf("first 503 %v after redis hung, want within 3 s", first503)
	}

	srv.Resume()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := get(t, b, o.frontURL("/sessionvp/hub/"))
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d 10 s after redis continued", resp.StatusCode)
		}
	}
}
