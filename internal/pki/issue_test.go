package pki

import (
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIssueClient(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	notBefore := time.Now().Truncate(time.Second)
	notAfter := notBefore.Add(24 * time.Hour)
	c, err := b.IssueClient("login-module", notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Leaf
	if l.Subject.CommonName != "login-module" || !l.NotBefore.Equal(notBefore) || !l.NotAfter.Equal(notAfter) ||
		!slices.Equal(l.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || l.IsCA {
		t.Errorf("issued: CN %q, %v–%v, ExtKeyUsage %v, IsCA %v", l.Subject.CommonName, l.NotBefore, l.NotAfter, l.ExtKeyUsage, l.IsCA)
	}
	if _, err := l.Verify(x509.VerifyOptions{Roots: b.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued certificate does not verify: %v", err)
	}
	if other, _ := b.IssueClient("login-module", notBefore, notAfter); other.Leaf.SerialNumber.Cmp(l.SerialNumber) == 0 {
		t.Error("two issued certificates share a serial number")
	}
}

func TestIssueClientRejectsBadArguments(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	now := time.Now()
	tests := []struct {
		name                string
		cn                  string
		notBefore, notAfter time.Time
		want                string
	}{
		{"empty common name", "", now, now.Add(time.Hour), "empty common name"},
		{"window reversed", "x", now, now.Add(-time.Hour), "not later than"},
		{"empty window", "x", now, now, "not later than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := b.IssueClient(tt.cn, tt.notBefore, tt.notAfter); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
