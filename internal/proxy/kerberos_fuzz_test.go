package proxy

import (
	"encoding/base64"
	"testing"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/spnego"
)

func spnegoSeed(t testing.TB, mechs []asn1.ObjectIdentifier, token []byte) []byte {
	st := spnego.SPNEGOToken{Init: true, NegTokenInit: spnego.NegTokenInit{MechTypes: mechs, MechTokenBytes: token}}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var ntlmNegotiateMessage, _ = base64.StdEncoding.DecodeString("TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==")

// FuzzDecodeNegotiate feeds the Negotiate token decoder (the part of
// parseNegotiate after base64) arbitrary bytes, without parseNegotiate's
// recover: a panic here is a bug to fix in the decoder or around it.
func FuzzDecodeNegotiate(f *testing.F) {
	krb5 := gssapi.OIDKRB5.OID()
	f.Add(spnegoSeed(f, []asn1.ObjectIdentifier{krb5}, []byte{0x60, 0x03, 0x06, 0x01, 0x00}))
	f.Add(spnegoSeed(f, []asn1.ObjectIdentifier{oidNTLM, krb5}, ntlmNegotiateMessage))
	f.Add(spnegoSeed(f, []asn1.ObjectIdentifier{oidNTLM}, ntlmNegotiateMessage))
	f.Add(spnegoSeed(f, []asn1.ObjectIdentifier{krb5}, nil))
	f.Add([]byte{0xa1, 0x07, 0x30, 0x05, 0xa0, 0x03, 0x0a, 0x01, 0x01})
	f.Add(ntlmNegotiateMessage)
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := decodeNegotiate(b)
		if err == nil && tok.kind == 0 {
			t.Fatalf("no error and no kind for %x", b)
		}
	})
}

func TestParseNegotiateRefusesWhatIsNoKerberos(t *testing.T) {
	krb5 := gssapi.OIDKRB5.OID()
	b64 := base64.StdEncoding.EncodeToString
	for _, c := range []struct {
		name, scheme, token string
		kind                negotiateKind // 0: an error
	}{
		{"empty", "Negotiate", "", 0},
		{"not base64", "Negotiate", "%%%", 0},
		{"too long", "Negotiate", string(make([]byte, maxNegotiateBytes+1)), 0},
		{"garbage", "Negotiate", b64([]byte("garbage")), 0},
		{"NTLM bare", "Negotiate", b64(ntlmNegotiateMessage), negotiateNTLM},
		{"NTLM scheme", "NTLM", b64(ntlmNegotiateMessage), negotiateNTLM},
		{"NTLM scheme, not NTLM", "NTLM", b64([]byte("hello")), 0},
		{"NTLM in SPNEGO", "Negotiate", b64(spnegoSeed(t, []asn1.ObjectIdentifier{oidNTLM}, ntlmNegotiateMessage)), negotiateNTLM},
		{"NTLM first, Kerberos offered", "Negotiate", b64(spnegoSeed(t, []asn1.ObjectIdentifier{oidNTLM, krb5}, ntlmNegotiateMessage)), negotiateOtherFirst},
		{"Kerberos offered, no token", "Negotiate", b64(spnegoSeed(t, []asn1.ObjectIdentifier{krb5}, nil)), negotiateOtherFirst},
		{"no mechanism", "Negotiate", b64(spnegoSeed(t, nil, nil)), 0},
		{"Kerberos with a broken token", "Negotiate", b64(spnegoSeed(t, []asn1.ObjectIdentifier{krb5}, []byte{1, 2, 3})), 0},
		{"another mechanism only", "Negotiate", b64(spnegoSeed(t, []asn1.ObjectIdentifier{{1, 2, 3, 4}}, []byte{1})), 0},
	} {
		tok, err := parseNegotiate(c.scheme, c.token)
		switch {
		case c.kind == 0 && err == nil:
			t.Errorf("%s: accepted as kind %d", c.name, tok.kind)
		case c.kind != 0 && (err != nil || tok.kind != c.kind):
			t.Errorf("%s: kind %d, %v; want kind %d", c.name, tok.kind, err, c.kind)
		}
	}
}
