package redis

import (
	"reflect"
	"testing"

	"github.com/openqps/openqps/internal/session"
)

// FuzzDecodeAttributes: any stored attribute list either fails to decode
// or survives an encode and decode unchanged; none panics.
func FuzzDecodeAttributes(f *testing.F) {
	f.Add(encodeAttributes([]session.Attribute{{Key: "Group", Value: "B"}, {Key: "Email", Value: "ü@example.com"}, {Key: "Group", Value: "A"}}))
	f.Add(encodeAttributes(nil))
	f.Add("\x02\x01a")
	f.Fuzz(func(t *testing.T, s string) {
		attrs, err := decodeAttributes(s)
		if err != nil {
			return
		}
		again, err := decodeAttributes(encodeAttributes(attrs))
		if err != nil || !reflect.DeepEqual(again, attrs) {
			t.Fatalf("%q decodes as %v, which comes back as %v, %v", s, attrs, again, err)
		}
	})
}
