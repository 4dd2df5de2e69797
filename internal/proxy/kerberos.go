package proxy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
)

// The Authorization: Negotiate token, RFC 4559: base64 of an SPNEGO
// NegTokenInit (RFC 4178) whose mechanism token is a Kerberos AP-REQ, or
// of a bare Kerberos GSS-API token (some clients skip SPNEGO), or of an
// NTLM message when the browser could not get a Kerberos ticket.

// maxNegotiateBytes bounds the Negotiate token openqps decodes. A ticket
// from Active Directory carries the user's group memberships in its PAC
// and grows with them; Windows' own HTTP stack accepts tokens up to
// 48 KiB (MaxTokenSize), so this leaves room above that and no more.
const maxNegotiateBytes = 64 << 10

// negotiateKind is what a Negotiate token turned out to carry.
type negotiateKind int

const (
	// negotiateKerberos: a Kerberos AP-REQ, in apReq.
	negotiateKerberos negotiateKind = iota + 1
	// negotiateNTLM: an NTLM message, bare or inside SPNEGO, with no
	// Kerberos offered.
	negotiateNTLM
	// negotiateOtherFirst: SPNEGO offering Kerberos, but with another
	// mechanism's optimistic token first; the answer is to ask for
	// Kerberos (RFC 4178 §3.2, accept-incomplete with supportedMech).
	negotiateOtherFirst
)

// negotiateToken is a parsed Negotiate token.
type negotiateToken struct {
	kind  negotiateKind
	apReq messages.APReq
}

// oidNTLM is NTLMSSP's mechanism OID in SPNEGO.
var oidNTLM = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 2, 10}

// ntlmSignature starts every NTLM message.
var ntlmSignature = []byte("NTLMSSP\x00")

// negotiateCredentials returns the token of an Authorization header value
// that uses the Negotiate or NTLM scheme (any case), and whether it does.
func negotiateCredentials(value string) (scheme, token string, ok bool) {
	scheme, token, _ = strings.Cut(strings.TrimLeft(value, " "), " ")
	if !strings.EqualFold(scheme, "Negotiate") && !strings.EqualFold(scheme, "NTLM") {
		return "", "", false
	}
	return scheme, strings.Trim(token, " "), true
}

// parseNegotiate decodes the credentials of an Authorization header in the
// Negotiate (or NTLM) scheme. Every error says what was wrong with the
// token; none is the caller's fault alone to the point of being a server
// error.
func parseNegotiate(scheme, token string) (t negotiateToken, err error) {
	if len(token) > maxNegotiateBytes {
		return t, fmt.Errorf("the %s token has %d bytes, more than the %d accepted", scheme, len(token), maxNegotiateBytes)
	}
	if token == "" {
		return t, fmt.Errorf("the %s token is empty", scheme)
	}
	b, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return t, fmt.Errorf("the %s token is not base64: %v", scheme, err)
	}
	if strings.EqualFold(scheme, "NTLM") && !bytes.HasPrefix(b, ntlmSignature) {
		return t, errors.New("the NTLM token is not an NTLM message")
	}
	defer func() {
		// gokrb5's ASN.1 decoder is a fork of an old encoding/asn1: a
		// token it trips over must be a refusal, not a crashed request.
		// (FuzzDecodeNegotiate runs decodeNegotiate without this net.)
		if r := recover(); r != nil {
			t, err = negotiateToken{}, fmt.Errorf("the Negotiate token is malformed ASN.1")
		}
	}()
	return decodeNegotiate(b)
}

// decodeNegotiate reads a decoded Negotiate token that is not an NTLM
// message.
func decodeNegotiate(b []byte) (t negotiateToken, err error) {
	if bytes.HasPrefix(b, ntlmSignature) {
		return negotiateToken{kind: negotiateNTLM}, nil
	}
	var st spnego.SPNEGOToken
	if err := st.Unmarshal(b); err != nil {
		// A bare Kerberos GSS-API token, without SPNEGO around it.
		var k5 spnego.KRB5Token
		if k5.Unmarshal(b) != nil {
			return t, fmt.Errorf("the Negotiate token is neither SPNEGO nor Kerberos: %v", err)
		}
		return kerberosMechToken(b)
	}
	if st.Resp {
		// The second leg of a negotiation: openqps never asked for one
		// but with Kerberos (negotiateOtherFirst), so an NTLM reply here
		// is a client that can only do NTLM.
		if bytes.HasPrefix(st.NegTokenResp.ResponseToken, ntlmSignature) {
			return negotiateToken{kind: negotiateNTLM}, nil
		}
		if len(st.NegTokenResp.ResponseToken) > 0 {
			return kerberosMechToken(st.NegTokenResp.ResponseToken)
		}
		return t, errors.New("the Negotiate token is an SPNEGO response without a mechanism token")
	}
	mechs := st.NegTokenInit.MechTypes
	if len(mechs) == 0 {
		return t, errors.New("the SPNEGO token offers no mechanism")
	}
	if isKerberosOID(mechs[0]) {
		if len(st.NegTokenInit.MechTokenBytes) == 0 {
			return negotiateToken{kind: negotiateOtherFirst}, nil
		}
		return kerberosMechToken(st.NegTokenInit.MechTokenBytes)
	}
	for _, m := range mechs[1:] {
		if isKerberosOID(m) {
			return negotiateToken{kind: negotiateOtherFirst}, nil
		}
	}
	if mechs[0].Equal(oidNTLM) || bytes.HasPrefix(st.NegTokenInit.MechTokenBytes, ntlmSignature) {
		return negotiateToken{kind: negotiateNTLM}, nil
	}
	return t, fmt.Errorf("the SPNEGO token offers mechanism %s and not Kerberos", mechs[0])
}

func isKerberosOID(oid asn1.ObjectIdentifier) bool {
	return oid.Equal(gssapi.OIDKRB5.OID()) || oid.Equal(gssapi.OIDMSLegacyKRB5.OID())
}

// kerberosMechToken reads a Kerberos GSS-API token (RFC 4121 §4.1), which
// must be an AP-REQ: the only message a client starts with.
func kerberosMechToken(b []byte) (negotiateToken, error) {
	var k5 spnego.KRB5Token
	if err := k5.Unmarshal(b); err != nil {
		return negotiateToken{}, fmt.Errorf("the Kerberos token is malformed: %v", err)
	}
	if !k5.IsAPReq() {
		return negotiateToken{}, errors.New("the Kerberos token is not an AP-REQ (a client starts with its ticket)")
	}
	return negotiateToken{kind: negotiateKerberos, apReq: k5.APReq}, nil
}
