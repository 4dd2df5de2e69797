package pki

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// handshake dials a listener with serverConf on 127.0.0.1 with clientConf
// and returns the server's handshake error. With TLS 1.3 a rejected client
// certificate shows on the client only at its first read, so the server's
// view is the one that counts.
func handshake(t *testing.T, serverConf, clientConf *tls.Config) (state tls.ConnectionState, serverErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverConf)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		err = c.(*tls.Conn).Handshake()
		if err == nil {
			_, err = c.Write([]byte("ok"))
		}
		done <- err
	}()

	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), clientConf)
	if err == nil {
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		state = conn.ConnectionState()
		io.ReadAll(conn)
	} else {
		ln.Close() // in case the server never got the connection
	}
	serverErr = <-done
	if serverErr == nil && err != nil {
		t.Fatalf("server accepted but client failed: %v", err)
	}
	return state, serverErr
}

func TestAPIHandshake(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	other := ensure(t)
	now := time.Now()
	issued, err := b.IssueClient("login-module", now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := b.IssueClient("expired", now.AddDate(-1, 0, 0), now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	notYetValid, err := b.IssueClient("not-yet-valid", now.Add(time.Hour), now.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	withUsage := func(usages ...x509.ExtKeyUsage) tls.Certificate {
		tmpl := clientTemplate("login-module", now.Add(-time.Minute), now.Add(time.Hour))
		tmpl.ExtKeyUsage = usages
		c, err := issue(tmpl, b.CA, b.caKey)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	caAsClient := tls.Certificate{Certificate: [][]byte{b.CA.Raw}, PrivateKey: b.caKey, Leaf: b.CA}
	withCert := func(certs ...tls.Certificate) *tls.Config {
		c := b.ClientTLS()
		c.Certificates = certs
		return c
	}

	tests := []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{"own client certificate", b.ClientTLS(), true},
		{"issued client certificate", withCert(issued), true},
		{"client certificate of another CA", withCert(other.Client), false},
		{"no client certificate", withCert(), false},
		{"expired client certificate", withCert(expired), false},
		{"client certificate not yet valid", withCert(notYetValid), false},
		{"server certificate as client certificate", withCert(b.Server), false},
		{"the CA certificate, with its key", withCert(caAsClient), false},
		{"CA-signed, no extended key usage", withCert(withUsage()), false},
		{"CA-signed, server authentication only", withCert(withUsage(x509.ExtKeyUsageServerAuth)), false},
		{"CA-signed, any extended key usage", withCert(withUsage(x509.ExtKeyUsageAny)), false},
		{"CA-signed, code signing only", withCert(withUsage(x509.ExtKeyUsageCodeSigning)), false},
		{"CA-signed, server and client authentication", withCert(withUsage(x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := handshake(t, b.APITLS(), tt.client)
			if (err == nil) != tt.ok {
				t.Errorf("server handshake error = %v, want success %v", err, tt.ok)
			}
		})
	}
}

func TestClientRejectsServerOfAnotherCA(t *testing.T) {
	t.Parallel()
	b, other := ensure(t), ensure(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", other.ServerTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), b.ClientTLS())
	if err == nil {
		conn.Close()
		t.Fatal("client trusted a server certificate of another CA")
	}
	if !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("err = %v, want unknown authority", err)
	}
}

func TestFrontEndNegotiatesHTTP2(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	for _, proto := range []string{"h2", "http/1.1"} {
		c := b.ClientTLS()
		c.Certificates = nil // a browser has none
		c.NextProtos = []string{proto}
		state, err := handshake(t, b.ServerTLS(), c)
		if err != nil || state.NegotiatedProtocol != proto {
			t.Errorf("client offering %s: err %v, negotiated %q", proto, err, state.NegotiatedProtocol)
		}
	}
	if c := b.ServerTLS(); c.MinVersion != tls.VersionTLS12 || c.ClientAuth != tls.NoClientCert {
		t.Errorf("ServerTLS: MinVersion %x ClientAuth %v", c.MinVersion, c.ClientAuth)
	}
}

func TestServerCertVerifiesForLocalNames(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			_, err := b.Server.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: b.CAPool})
			if err != nil {
				t.Errorf("verify for %q: %v", name, err)
			}
		})
	}
	if _, err := b.Server.Leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: b.CAPool}); err == nil {
		t.Error("server certificate verifies for example.com")
	}

	// The same through a real handshake, by name as a browser would.
	c := b.ClientTLS()
	c.ServerName = "localhost"
	if _, err := handshake(t, b.ServerTLS(), c); err != nil {
		t.Errorf("handshake with ServerName localhost: %v", err)
	}
}

func TestConfigsAreIndependentCopies(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	c := b.ClientTLS()
	c.ServerName = "changed"
	c.Certificates[0] = tls.Certificate{}
	if b.ClientTLS().ServerName != "" || len(b.ClientTLS().Certificates[0].Certificate) == 0 {
		t.Error("changing a returned ClientTLS changed the next one")
	}
	a := b.APITLS()
	a.ClientAuth = tls.NoClientCert
	if b.APITLS().ClientAuth != tls.RequireAndVerifyClientCert {
		t.Error("changing a returned APITLS changed the next one")
	}
}
