package proxy

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/upstream"
)

// A websocket is proxied as a tunnel of its own, not through
// httputil.ReverseProxy, because openqps must be able to end it: when its
// session ends (inactivity, API delete, logout — on any node) the browser
// gets QPS's JSON-RPC notice and the socket is closed. To put a message
// between the back end's frames, the back end → browser direction is
// read frame by frame; payloads stream through a buffer and are never
// held whole. The browser → back end direction is copied as bytes.
//
// Upgrades to anything but websocket are forwarded as plain requests
// without their Upgrade header (outboundHeader drops it), so the back end
// answers them as ordinary requests.

// wsGUID is RFC 6455's key suffix for Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsCloseWait bounds how long ending a tunnel waits for a stalled
// browser to take the notice.
const wsCloseWait = time.Second

// isWebsocket reports whether r asks to upgrade to a websocket.
func isWebsocket(r *http.Request) bool {
	return isUpgrade(r) && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// tunnel is one proxied websocket.
type tunnel struct {
	prefix, sessionID string
	anonymous         bool // its session is anonymous, not in the store
	client            net.Conn
	backend           *upstream.Upgraded
	// framed is true when the back end completed a real RFC 6455
	// handshake; only then are its frames parsed (and a notice possible).
	framed bool
	// active is set by traffic in either direction and cleared when the
	// activity is recorded on the session.
	active atomic.Bool
	// ending holds the notice to send when openqps ends the tunnel.
	ending  atomic.Pointer[tunnelEnd]
	endOnce sync.Once
}

// tunnelEnd is why openqps ends a tunnel: the JSON-RPC method and message
// sent to the browser, and the close code.
type tunnelEnd struct {
	method, message string
	code            uint16
}

var (
	endTimedOut  = &tunnelEnd{"OnSessionTimedOut", "Session timed out due to inactivity", 1000}
	endLoggedOut = &tunnelEnd{"OnSessionLoggedOut", "Session logged out", 1000}
	endClosed    = &tunnelEnd{"OnSessionClosed", "Session closed by server", 1000}
	endShutdown  = &tunnelEnd{"OnSessionClosed", "Session closed by server: the proxy is shutting down", 1001}
	endRemoved   = &tunnelEnd{"OnSessionClosed", "Session closed by server: the virtual proxy was removed", 1001}
)

// endFor maps why a session ended to the notice QPS sends.
func endFor(kind session.EventKind) *tunnelEnd {
	if kind == session.Expired {
		return endTimedOut
	}
	return endLoggedOut
}

// tunnelWebsocket takes over the client connection after the back end
// accepted the upgrade, answers 101 and starts the tunnel, which runs
// until either side closes or openqps ends it. It returns an error only
// when nothing was written to the client yet.
func (p *Proxy) tunnelWebsocket(rq *request, resp *http.Response) error {
	backend, ok := resp.Body.(*upstream.Upgraded)
	if !ok || !isWebsocket(rq.r) || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		resp.Body.Close()
		return errors.Join(errBackend, errors.New("the back end switched to a protocol the client did not ask for"))
	}
	framed := resp.Header.Get("Sec-Websocket-Accept") == wsAccept(rq.r.Header.Get("Sec-Websocket-Key"))
	conn, brw, err := http.NewResponseController(rq.w).Hijack()
	if err != nil {
		backend.Close()
		return fmt.Errorf("take over the client connection: %w", err)
	}
	t := &tunnel{prefix: rq.vp.cfg.Prefix, sessionID: rq.session.ID, anonymous: rq.anonymous, client: conn, backend: backend, framed: framed}
	// Registered before the browser learns the upgrade succeeded, so every
	// end of the session after that reaches this tunnel; an end between
	// authentication and now is caught by the lookup right after.
	if !p.tunnels.add(t) {
		t.end(endShutdown)
	}
	if !t.anonymous { // an anonymous session is not in the store (anonymous.go)
		if _, err := p.store.Get(rq.r.Context(), t.prefix, t.sessionID); errors.Is(err, session.ErrNotFound) {
			t.end(endClosed)
		}
	}

	h := rq.w.Header() // the session cookie of a redeemed ticket, additional headers
	upstream.CopyFields(h, resp.Header)
	rq.vp.addResponseHeaders(rq.w)
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n")
	h.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		p.tunnels.remove(t)
		conn.Close()
		backend.Close()
		return nil // the client is gone
	}
	p.log.Debug("websocket opened", "event", "websocket.opened", "vp", t.prefix, "session", session.Redact(t.sessionID), "framed", framed)

	// The tunnel runs on goroutines of its own and the handler returns:
	// net/http then lets go of the connection's buffers and the handler's
	// deep stack, which would otherwise sit idle for the websocket's life
	// (about 20 KB of the 60 KB each open websocket cost).
	n := rq.node
	rq.node = nil // the back end's load count ends with the tunnel
	go t.clientToBackend(brw.Reader)
	go func() {
		defer p.tunnels.remove(t)
		defer conn.Close()
		defer backend.Close()
		t.backendToClient(brw.Writer)
		if n != nil {
			n.inflight.Add(-1)
		}
		p.log.Debug("websocket closed", "event", "websocket.closed", "vp", t.prefix, "session", session.Redact(t.sessionID))
	}()
	return nil
}

// wsAccept is the Sec-WebSocket-Accept a back end must answer key with.
func wsAccept(key string) string {
	if key == "" {
		return "\x00" // matches no header value
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// end makes the tunnel send e's notice and close, within wsCloseWait. It
// is safe to call from any goroutine, more than once.
func (t *tunnel) end(e *tunnelEnd) {
	t.endOnce.Do(func() {
		t.ending.Store(e)
		// Wake the back end reader; the copier then writes the notice
		// between two frames and closes.
		t.backend.SetReadDeadline(time.Unix(1, 0))
		t.client.SetWriteDeadline(time.Now().Add(wsCloseWait))
	})
}

// clientToBackend copies the browser's bytes to the back end until either
// side closes, then closes the back end so the other direction ends too.
// The bytes go straight from r's own buffer: an idle websocket holds no
// copy buffer (at 10k websockets, 32 KB each would be 320 MB).
func (t *tunnel) clientToBackend(r *bufio.Reader) {
	for {
		if _, err := r.Peek(1); err != nil {
			break
		}
		t.active.Store(true)
		b, _ := r.Peek(r.Buffered())
		n, err := t.backend.Write(b)
		r.Discard(n)
		if err != nil {
			break
		}
	}
	if t.ending.Load() == nil {
		t.backend.Close()
	}
}

// backendToClient copies the back end's frames to the browser until
// either side closes or the tunnel is ended; then it sends the notice,
// when it can, and closes both sides.
func (t *tunnel) backendToClient(w *bufio.Writer) {
	var fc frameCopier
	var err error
	if t.framed {
		err = fc.copy(w, t.backend.Reader, &t.active)
	} else {
		err = copyRaw(w, t.backend.Reader, &t.active)
		fc.boundary = false // no frames: no place for a notice
	}
	e := t.ending.Load()
	if e == nil || err == nil {
		t.client.Close()
		return
	}
	if fc.boundary && !fc.inMessage {
		w.Write(appendFrame(nil, opText, noticeJSON(e, time.Now())))
	}
	if fc.boundary {
		closing := binary.BigEndian.AppendUint16(nil, e.code)
		w.Write(appendFrame(nil, opClose, closing))
	}
	w.Flush()
	t.client.Close()
	t.backend.Close()
}

// Websocket opcodes (RFC 6455 §5.2).
const (
	opText  = 0x1
	opClose = 0x8
)

// frameCopier copies websocket frames and knows, between them, whether a
// fragmented message is open (a new data frame may not start then).
type frameCopier struct {
	boundary  bool // the last frame was copied whole
	inMessage bool // a fragmented data message is not finished
}

// copy copies frames from r to w until r fails. It flushes w whenever r
// has nothing more buffered, so small frames are batched but never held.
func (fc *frameCopier) copy(w *bufio.Writer, r *bufio.Reader, active *atomic.Bool) error {
	var head [14]byte
	for {
		fc.boundary = true
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if got, err := io.ReadFull(r, head[:2]); err != nil {
			fc.boundary = got == 0 // half a header is not a boundary
			return err
		}
		fc.boundary = false
		active.Store(true)
		n := 2
		size := uint64(head[1] & 0x7f)
		switch size {
		case 126:
			if _, err := io.ReadFull(r, head[2:4]); err != nil {
				return err
			}
			size, n = uint64(binary.BigEndian.Uint16(head[2:4])), 4
		case 127:
			if _, err := io.ReadFull(r, head[2:10]); err != nil {
				return err
			}
			size, n = binary.BigEndian.Uint64(head[2:10]), 10
		}
		if head[1]&0x80 != 0 { // masked (servers should not, but may)
			if _, err := io.ReadFull(r, head[n:n+4]); err != nil {
				return err
			}
			n += 4
		}
		if _, err := w.Write(head[:n]); err != nil {
			return err
		}
		size = min(size, 1<<62)
		// w's ReadFrom moves the payload through w's own buffer.
		if copied, err := io.Copy(w, io.LimitReader(r, int64(size))); err != nil {
			return err
		} else if uint64(copied) < size {
			return io.ErrUnexpectedEOF
		}
		fin, opcode := head[0]&0x80 != 0, head[0]&0x0f
		if opcode < opClose { // data frames; control frames may come between fragments
			fc.inMessage = !fin
		}
	}
}

// copyRaw copies an upgraded connection that is not a framed websocket,
// straight from r's buffer, flushing w when r has nothing more buffered.
func copyRaw(w *bufio.Writer, r *bufio.Reader, active *atomic.Bool) error {
	for {
		if _, err := r.Peek(1); err != nil {
			return err
		}
		active.Store(true)
		b, _ := r.Peek(r.Buffered())
		n, err := w.Write(b)
		r.Discard(n)
		if err != nil {
			return err
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}

// appendFrame appends an unmasked, final server frame.
func appendFrame(b []byte, opcode byte, payload []byte) []byte {
	b = append(b, 0x80|opcode)
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// noticeJSON is QPS's proxy → client message, e.g.
// {"jsonrpc":"2.0","method":"OnSessionTimedOut","params":{"severity":"fatal",...}}.
func noticeJSON(e *tunnelEnd, now time.Time) []byte {
	type params struct {
		Severity  string `json:"severity"`
		Timestamp string `json:"timestamp"`
		Message   string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  params `json:"params"`
	}{"2.0", e.method, params{"fatal", now.UTC().Format("2006-01-02T15:04:05.0000000Z"), e.message}})
	return b
}
