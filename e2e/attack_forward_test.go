package e2e

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Request is one HTTP/2 request as it goes on the wire, byte for byte:
// Go's own HTTP/2 client refuses (or tidies) the malformed pseudo-headers
// and fields the attacks need, so h2Send encodes them itself.
type h2Request struct {
	// Pseudo are the pseudo-header fields (":method", ":path",
	// ":authority", ":scheme") in order, sent as given. When nil,
	// Method, Path, Authority and Scheme make them, each defaulting to
	// GET, /, the front end's address and https.
	Pseudo                          [][2]string
	Method, Path, Authority, Scheme string
	// Header are the regular fields, in order, names as given (HTTP/2
	// wants them lower case; an attack may not).
	Header [][2]string
	// Body, when not empty, is sent in one DATA frame.
	Body string
	// Trailer, when set, is sent as a last HEADERS frame after the body.
	Trailer [][2]string
}

// h2Answer is what the server answered on the request's stream. Status 0
// means the stream or the connection was reset (RST_STREAM or GOAWAY)
// instead of answered; Reset then says how.
type h2Answer struct {
	Status int
	Header http.Header
	Body   string
	Reset  string
}

// h2Send opens a TLS connection to addr with ALPN h2, sends the client
// preface and SETTINGS, writes req on stream 1 and reads the answer
// until the stream ends, is reset, or the connection is closed.
func h2Send(t *testing.T, addr string, cfg *tls.Config, req h2Request) h2Answer {
	t.Helper()
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("the front end negotiated %q, want h2", p)
	}
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatalf("write preface: %v", err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.AllowIllegalWrites = true
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatalf("write settings: %v", err)
	}

	pseudo := req.Pseudo
	if pseudo == nil {
		pseudo = [][2]string{
			{":method", orDefault(req.Method, http.MethodGet)},
			{":path", orDefault(req.Path, "/")},
			{":authority", orDefault(req.Authority, addr)},
			{":scheme", orDefault(req.Scheme, "https")},
		}
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range append(pseudo, req.Header...) {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	onlyHead := req.Body == "" && req.Trailer == nil
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: onlyHead}); err != nil {
		t.Fatalf("write headers: %v", err)
	}
	if req.Body != "" {
		if err := fr.WriteData(1, req.Trailer == nil, []byte(req.Body)); err != nil {
			t.Fatalf("write data: %v", err)
		}
	}
	if req.Trailer != nil {
		block.Reset()
		for _, f := range req.Trailer {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: true}); err != nil {
			t.Fatalf("write trailers: %v", err)
		}
	}

	var a h2Answer
	var body bytes.Buffer
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the front end neither answered nor closed the connection")
			}
			if a.Status == 0 && a.Reset == "" {
				a.Reset = "connection closed: " + err.Error()
			}
			a.Body = body.String()
			return a
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			if a.Status == 0 {
				a.Reset = "GOAWAY " + f.ErrCode.String() + " " + string(f.DebugData())
				return a
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				a.Status, a.Reset = 0, "RST_STREAM "+f.ErrCode.String()
				return a
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			if a.Header == nil { // the response head; a later one is its trailers
				a.Header = http.Header{}
				for _, hf := range f.RegularFields() {
					a.Header.Add(hf.Name, hf.Value)
				}
				a.Status, _ = strconv.Atoi(f.PseudoValue("status"))
				if a.Status < 200 { // an interim answer: the real one follows
					a.Header = nil
				}
			}
			if f.StreamEnded() {
				a.Body = body.String()
				return a
			}
		case *http2.DataFrame:
			if f.StreamID != 1 {
				continue
			}
			body.Write(f.Data())
			if n := len(f.Data()); n > 0 {
				// Keep the server's send window open for large answers.
				fr.WriteWindowUpdate(0, uint32(n))
				fr.WriteWindowUpdate(1, uint32(n))
			}
			if f.StreamEnded() {
				a.Body = body.String()
				return a
			}
		}
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
