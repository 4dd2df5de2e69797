package embedded

import (
	"reflect"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/session"
)

// FuzzDecodeRecords feeds arbitrary bytes to the record decoders, as a
// damaged store file would: they must return an error, never panic, and
// what decodes must survive an encode and decode unchanged.
func FuzzDecodeRecords(f *testing.F) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	s := session.Session{Prefix: "vp", ID: "id1", UserDirectory: "D", UserID: "U",
		Attributes: []session.Attribute{{Key: "Group", Value: "A"}, {Key: "Group", Value: "B"}},
		Created:    now, LastUsed: now, Timeout: time.Minute}
	f.Add([]byte("vp\x00id1"), encodeSession(s))
	f.Add([]byte("t1"), encodeTicket(session.Ticket{ID: "t1", Prefix: "vp", UserID: "U", TargetURI: "https://x/", Expires: now}))
	f.Add([]byte("vp\x00x"), []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		if s, err := decodeSession(k, v); err == nil {
			again, err := decodeSession(k, encodeSession(s))
			if err != nil || !reflect.DeepEqual(again, s) {
				t.Fatalf("session %+v comes back as %+v, %v", s, again, err)
			}
		}
		if tk, err := decodeTicket(k, v); err == nil {
			again, err := decodeTicket(k, encodeTicket(tk))
			if err != nil || !reflect.DeepEqual(again, tk) {
				t.Fatalf("ticket %+v comes back as %+v, %v", tk, again, err)
			}
		}
	})
}
