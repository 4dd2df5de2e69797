package proxy

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFrameCopierCopiesFramesExactlyAndTracksMessages(t *testing.T) {
	var in []byte
	in = append(in, 0x01, 3, 'a', 'b', 'c')                 // text, not final: a message opens
	in = appendFrame(in, 0x9, []byte("ping"))               // control frame between fragments
	in = append(in, 0x00, 126, 0x01, 0x00)                  // continuation, 256 bytes, not final
	in = append(in, bytes.Repeat([]byte{'x'}, 256)...)      //
	in = append(in, 0x82, 0x80|2, 1, 2, 3, 4, 'm'^1, 'k'^2) // masked final binary frame
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	var fc frameCopier
	var active atomic.Bool
	err := fc.copy(w, bufio.NewReader(bytes.NewReader(in)), &active)
	if err != io.EOF || !fc.boundary {
		t.Fatalf("copy ended with %v, boundary %v; want EOF at a boundary", err, fc.boundary)
	}
	w.Flush()
	if !bytes.Equal(out.Bytes(), in) {
		t.Errorf("frames changed in transit")
	}
	if !active.Load() {
		t.Error("traffic not marked as activity")
	}

	// A fragmented message cut short: no place for a notice.
	fc = frameCopier{}
	fc.copy(bufio.NewWriter(io.Discard), bufio.NewReader(bytes.NewReader([]byte{0x01, 1, 'a'})), &active)
	if !fc.inMessage {
		t.Error("an unfinished fragmented message was not noticed")
	}
	fc = frameCopier{}
	fc.copy(bufio.NewWriter(io.Discard), bufio.NewReader(bytes.NewReader([]byte{0x81, 5, 'a'})), &active)
	if fc.boundary {
		t.Error("a frame cut in its payload counts as a boundary")
	}
	fc = frameCopier{}
	fc.copy(bufio.NewWriter(io.Discard), bufio.NewReader(bytes.NewReader([]byte{0x81})), &active)
	if fc.boundary {
		t.Error("half a frame header counts as a boundary")
	}
}

func TestNoticeIsQPSShape(t *testing.T) {
	got := string(noticeJSON(endTimedOut, time.Date(2014, 1, 10, 8, 55, 17, 372514800, time.UTC)))
	want := `{"jsonrpc":"2.0","method":"OnSessionTimedOut","params":{"severity":"fatal","timestamp":"2014-01-10T08:55:17.3725148Z","message":"Session timed out due to inactivity"}}`
	if got != want {
		t.Errorf("notice\n got %s\nwant %s", got, want)
	}
}

func TestAppendFrameLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		f := appendFrame(nil, opText, []byte(strings.Repeat("a", n)))
		var fc frameCopier
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		var active atomic.Bool
		if err := fc.copy(w, bufio.NewReader(bytes.NewReader(f)), &active); err != io.EOF || !fc.boundary {
			t.Errorf("%d bytes: %v boundary %v", n, err, fc.boundary)
		}
	}
}

func TestCSRFTokenIsPerSessionAndKey(t *testing.T) {
	key, other := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	a, b := csrfTokenOf(key, "vp", "session-a"), csrfTokenOf(key, "vp", "session-b")
	if a == b || a != csrfTokenOf(key, "vp", "session-a") || a == csrfTokenOf(key, "other", "session-a") {
		t.Errorf("tokens %s %s: want stable per session and virtual proxy", a, b)
	}
	if a == csrfTokenOf(other, "vp", "session-a") {
		t.Errorf("token %s does not depend on the key", a)
	}
}
