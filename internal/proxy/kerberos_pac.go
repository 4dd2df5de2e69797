package proxy

import (
	"errors"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/adtype"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/pac"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// The PAC (MS-PAC, Privilege Attribute Certificate) is the authorization
// data a KDC puts in the ticket: Active Directory fills it with the
// user's logon information (group SIDs, the NetBIOS domain); MIT Kerberos
// (1.20 and later) puts a smaller one with the client's name and UPN and
// no logon information. gokrb5 refuses a PAC without logon information,
// so openqps reads the PAC itself with gokrb5's decoders, and accepts
// both: attributes come from what is there. A PAC whose server signature
// does not verify with the service key is a forged ticket and refused.

// discardLog stands for the logger gokrb5's PAC decoder writes its
// notices to.
var discardLog = log.New(io.Discard, "", 0)

// pacAttributes returns the session attributes of the ticket's PAC
// (req's ticket already decrypted): a GroupSid for each group of the
// logon information, and the UserPrincipalName. A ticket without PAC
// gives none.
func pacAttributes(req *messages.APReq, w *config.Windows) (attrs []session.Attribute, err error) {
	p, found, err := ticketPAC(req, w)
	if err != nil || !found {
		return nil, err
	}
	if p.KerbValidationInfo != nil {
		for _, sid := range p.KerbValidationInfo.GetGroupMembershipSIDs() {
			attrs = append(attrs, session.Attribute{Key: "GroupSid", Value: sid})
		}
	}
	if p.UPNDNSInfo != nil && p.UPNDNSInfo.UPN != "" {
		attrs = append(attrs, session.Attribute{Key: "UserPrincipalName", Value: p.UPNDNSInfo.UPN})
	}
	return attrs, nil
}

// ticketPAC finds, decodes and verifies the PAC of a decrypted ticket.
func ticketPAC(req *messages.APReq, w *config.Windows) (p pac.PACType, found bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			found, err = true, errors.New("the ticket's PAC is malformed")
		}
	}()
	tkt := &req.Ticket
	for _, ad := range tkt.DecryptedEncPart.AuthorizationData {
		if ad.ADType != adtype.ADIfRelevant {
			continue
		}
		var inner types.AuthorizationData
		if inner.Unmarshal(ad.ADData) != nil || len(inner) == 0 || inner[0].ADType != adtype.ADWin2KPAC {
			continue
		}
		if err := p.Unmarshal(inner[0].ADData); err != nil {
			return p, true, fmt.Errorf("the ticket's PAC is malformed: %v", err)
		}
		key, _, err := w.Keys.GetEncryptionKey(w.Principal, tkt.Realm, tkt.EncPart.KVNO, tkt.EncPart.EType)
		if err != nil {
			return p, true, fmt.Errorf("no key to verify the PAC: %v", err)
		}
		if err := p.ProcessPACInfoBuffers(key, discardLog); err != nil && p.KerbValidationInfo != nil {
			return p, true, fmt.Errorf("the ticket's PAC does not verify: %v", err)
		}
		// Without logon information gokrb5 stops before the checks
		// that matter: the server signature, and that the PAC is the
		// ticket's client's.
		if p.ServerChecksum == nil || p.ClientInfo == nil {
			return p, true, errors.New("the ticket's PAC has no server signature or client information")
		}
		et, err := crypto.GetChksumEtype(int32(p.ServerChecksum.SignatureType))
		if err != nil {
			return p, true, fmt.Errorf("the ticket's PAC signature: %v", err)
		}
		if !et.VerifyChecksum(key.KeyValue, p.ZeroSigData, p.ServerChecksum.Signature, keyusage.KERB_NON_KERB_CKSUM_SALT) {
			return p, true, errors.New("the ticket's PAC signature does not verify with the service key: a forged PAC")
		}
		if name := tkt.DecryptedEncPart.CName.PrincipalNameString(); !strings.EqualFold(p.ClientInfo.Name, name) &&
			!strings.EqualFold(p.ClientInfo.Name, name+"@"+tkt.DecryptedEncPart.CRealm) {
			return p, true, fmt.Errorf("the ticket's PAC is of %q, not of its client %q", p.ClientInfo.Name, name)
		}
		return p, true, nil
	}
	return p, false, nil
}
