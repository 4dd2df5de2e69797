// Package websocket is the little of RFC 6455 the benchmark needs: the
// handshake and single-frame messages, for an echoing back end and a
// client that holds thousands of connections open through openqps. It is
// not a general websocket library (no fragmentation, no extensions).
package websocket

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

const (
	OpText  = 0x1
	OpClose = 0x8
)

// Accept is the Sec-WebSocket-Accept answer to a Sec-WebSocket-Key.
func Accept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// NewKey returns a fresh Sec-WebSocket-Key.
func NewKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// maxPayload bounds what ReadFrame accepts: the benchmark sends a few bytes.
const maxPayload = 1 << 20

// ReadFrame reads one frame, unmasking it if the sender masked it.
func ReadFrame(r *bufio.Reader) (opcode byte, payload []byte, err error) {
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	if head[0]&0x80 == 0 {
		return 0, nil, errors.New("fragmented frames are not supported")
	}
	n := uint64(head[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > maxPayload {
		return 0, nil, fmt.Errorf("frame of %d bytes is too large", n)
	}
	var mask [4]byte
	masked := head[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return head[0] & 0x0f, payload, nil
}

// WriteFrame writes one final frame; clients mask (mask true), servers do not.
func WriteFrame(w io.Writer, opcode byte, payload []byte, mask bool) error {
	frame := []byte{0x80 | opcode}
	maskBit := byte(0)
	if mask {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		frame = append(frame, maskBit|byte(n))
	case n <= 0xffff:
		frame = append(frame, maskBit|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, maskBit|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	if mask {
		var key [4]byte
		rand.Read(key[:])
		frame = append(frame, key[:]...)
		start := len(frame)
		frame = append(frame, payload...)
		for i := range payload {
			frame[start+i] ^= key[i%4]
		}
	} else {
		frame = append(frame, payload...)
	}
	_, err := w.Write(frame)
	return err
}

// EchoHandler upgrades the request and sends every text message back
// until the client closes.
func EchoHandler(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "a websocket upgrade is expected here", http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + Accept(key) + "\r\n\r\n")
	if err := rw.Flush(); err != nil {
		return
	}
	for {
		op, payload, err := ReadFrame(rw.Reader)
		if err != nil || op == OpClose {
			return
		}
		if err := WriteFrame(conn, op, payload, false); err != nil {
			return
		}
	}
}
