package pki

import (
	"context"
	"crypto"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

func TestClientPFXDecodes(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	key, cert, cas, err := pkcs12.DecodeChain(mustRead(t, filepath.Join(b.Dir, clientPFXFile)), PFXPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(b.Client.Leaf) {
		t.Error("client.pfx holds another certificate than client.pem")
	}
	if signer, ok := key.(crypto.Signer); !ok || !keyMatches(b.Client.Leaf, signer) {
		t.Error("client.pfx holds another key than client_key.pem")
	}
	if len(cas) != 1 || !cas[0].Equal(b.CA) {
		t.Errorf("client.pfx CA chain has %d certificates, want the CA", len(cas))
	}
}

// TestNodeUsesClientPFX checks that node (OpenSSL 3, as in qlik-auth and
// Postman's runtime) reads client.pfx with an empty passphrase and
// authenticates with it to the trusted API.
func TestNodeUsesClientPFX(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	b := ensure(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", b.APITLS())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.TLS.PeerCertificates[0].Subject.CommonName)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	const script = `
const fs = require('fs'), https = require('https'), tls = require('tls');
const [pfx, ca, port] = process.argv.slice(1);
tls.createSecureContext({pfx: fs.readFileSync(pfx), passphrase: ''});
https.get({host: 'localhost', port, path: '/', pfx: fs.readFileSync(pfx), passphrase: '', ca: fs.readFileSync(ca)}, res => {
  let body = '';
  res.on('data', d => body += d);
  res.on('end', () => console.log(res.statusCode, body));
}).on('error', e => { console.error(e.message); process.exit(1); });
`
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "-e", script,
		filepath.Join(b.Dir, clientPFXFile), filepath.Join(b.Dir, rootFile), port).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "200 hello QlikClient" {
		t.Errorf("node printed %q, want %q", got, "200 hello QlikClient")
	}
}
