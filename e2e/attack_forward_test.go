package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/session"
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

// startForward is start with two more virtual proxies: "auth", whose
// users arrive in the header X-Remote-User (header_static), the header a
// header-auth virtual proxy trusts and that must reach no back end; and
// "anon", where everyone is let in anonymously.
func startForward(t *testing.T) (*openqps, map[string]string) {
	t.Helper()
	o := start(t, func(c *config.Config) {
		vp := c.VirtualProxies[1]
		vp.Prefix, vp.SessionCookieName = "auth", "X-Qlik-Session-auth"
		vp.Auth = config.Auth{AuthenticationMethod: config.AuthHeaderStatic, HeaderName: "X-Remote-User", StaticUserDirectory: "ACME", AnonymousAccess: config.AnonymousNone}
		vp.AuthenticationModuleRedirectURI = ""
		anon := c.VirtualProxies[1]
		anon.Prefix, anon.SessionCookieName = "anon", "X-Qlik-Session-anon"
		anon.Auth = config.Auth{AuthenticationMethod: config.AuthTicket, AnonymousAccess: config.AnonymousAlways}
		c.VirtualProxies = append(c.VirtualProxies, vp, anon)
	})
	defID, svID := randomHex(16), randomHex(16)
	o.addSession(t, "", "DOMAIN", "User1", defID)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", svID)
	return o, map[string]string{
		"{cookie}":   "X-Qlik-Session=" + defID,
		"{svcookie}": "X-Qlik-Session-sessionvp=" + svID,
		"{defid}":    defID,
		"{svid}":     svID,
	}
}

// TestAttackForwardHTTP1 are the attacks of issue 14 on what openqps
// forwards, over HTTP/1.1: identity in request trailers, session cookies
// of other virtual proxies, the Host the back end is told, the header a
// header-auth virtual proxy trusts and underscore spellings of framing
// headers. The marker must reach no back end.
func TestAttackForwardHTTP1(t *testing.T) {
	o, vars := startForward(t)
	runAttackRows(t, o, vars, attackForwardRows())
}

func attackForwardRows() []attackRow {
	const closing = "Connection: close\r\n\r\n"
	served := []int{http.StatusOK}
	getWith := func(path string, headers ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: {host}\r\n" + strings.Join(headers, "") + closing
	}
	chunked := func(path, declared, trailer string) string {
		head := "POST " + path + " HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
		if declared != "" {
			head += "Trailer: " + declared + "\r\n"
		}
		return head + "Transfer-Encoding: chunked\r\n" + closing + "2\r\n{}\r\n0\r\n" + trailer + "\r\n"
	}
	return []attackRow{
		// Item 2: request trailers never reach a back end, whatever they name.
		{name: "X-Forwarded-For in a request trailer", raw: chunked("/hub/", "X-Forwarded-For", "X-Forwarded-For: {mark}\r\n"), want: served},
		{name: "session cookie of another VP in a request trailer", raw: chunked("/hub/", "Cookie", "Cookie: X-Qlik-Session-sessionvp={mark}\r\n"), want: served},
		{name: "X-Qlik-Security in an undeclared trailer", raw: chunked("/hub/", "", "X-Qlik-Security: Group={mark}\r\n"), want: served},
		{name: "X-Qlik-User in a lower-case trailer", raw: chunked("/hub/", "x-qlik-user", "x-qlik-user: UserDirectory={mark}; UserId=sa\r\n"), want: served},
		{name: "harmless-looking trailer", raw: chunked("/hub/", "X-Note", "X-Note: {mark}\r\n"), want: served},
		{name: "Trailer announced on a Content-Length body", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nTrailer: X-{mark}\r\nContent-Length: 2\r\n" + closing + "{}", want: served},

		// Item 5: no back end receives any openqps session cookie.
		{name: "other VP's session cookie", raw: getWith("/hub/", "Cookie: {cookie}; X-Qlik-Session-sessionvp={mark}; theme=dark\r\n"), want: served},
		{name: "default VP's cookie on sessionvp", raw: getWith("/sessionvp/hub/", "Cookie: X-Qlik-Session={mark}; {svcookie}\r\n"), want: served},
		{name: "-HTTP cookie over HTTPS", raw: getWith("/hub/", "Cookie: {cookie}; X-Qlik-Session-HTTP={mark}\r\n"), want: served},
		{name: "other VP's -HTTP cookie", raw: getWith("/hub/", "Cookie: {cookie}; X-Qlik-Session-sessionvp-HTTP={mark}\r\n"), want: served},
		{name: "header VP's session cookie", raw: getWith("/hub/", "Cookie: X-Qlik-Session-auth={mark}; {cookie}\r\n"), want: served},
		{name: "session cookie name in another case", raw: getWith("/hub/", "Cookie: {cookie}; x-qlik-session-SESSIONVP={mark}\r\n"), want: served},
		{name: "quoted session cookie", raw: getWith("/hub/", "Cookie: {cookie}; X-Qlik-Session-sessionvp=\"{mark}\"\r\n"), want: served},
		{name: "space before the cookie's equals sign", raw: getWith("/hub/", "Cookie: {cookie}; X-Qlik-Session-sessionvp ={mark}\r\n"), want: served},
		{name: "session cookies in a second Cookie header", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "Cookie: a=1;X-Qlik-Session-sessionvp={mark};b=2\r\n"), want: served},
		{name: "live session cookies to an anonymous VP", raw: getWith("/anon/hub/", "Cookie: {cookie}; X-Qlik-Session-sessionvp={mark}; X-Qlik-Session-auth-HTTP={mark}\r\n"), want: served,
			check: func(t *testing.T, _ *http.Response, body string) {
				if !strings.Contains(body, "UserId=anon") {
					t.Errorf("not served anonymously: %s", body)
				}
			}},

		// Item 11: the back end is told a Host openqps validated.
		{name: "foreign Host with a session", raw: "GET /hub/ HTTP/1.1\r\nHost: {mark}.evil.example\r\nCookie: {cookie}\r\n" + closing, want: served},
		{name: "foreign Host on a POST with a session", raw: "POST /hub/ HTTP/1.1\r\nHost: {mark}.evil.example\r\nCookie: {cookie}\r\nContent-Length: 2\r\n" + closing + "{}", want: served},
		{name: "allowed name with a port of userinfo", raw: "GET /hub/ HTTP/1.1\r\nHost: localhost:1@{mark}.evil.example\r\nCookie: {cookie}\r\n" + closing, want: []int{http.StatusOK, http.StatusBadRequest}},
		{name: "logoutUri keeps a foreign Host out", raw: "GET /qps/user HTTP/1.1\r\nHost: {mark}.evil.example\r\nCookie: {cookie}\r\n" + closing, want: served,
			check: func(t *testing.T, _ *http.Response, body string) {
				if strings.Contains(body, "evil.example") {
					t.Errorf("the personal API echoes the foreign Host: %s", body)
				}
			}},

		// Item 15: the header a header-auth VP trusts, and underscore
		// spellings of framing and hop-by-hop headers.
		{name: "header-auth header on another VP", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Remote-User: {mark}\r\n"), want: served},
		{name: "header-auth header in upper case", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-REMOTE-USER: {mark}\r\n"), want: served},
		{name: "header-auth header with underscores", raw: getWith("/sessionvp/hub/", "Cookie: {svcookie}\r\n", "X_Remote_User: {mark}\r\n"), want: served},
		{name: "Transfer_Encoding", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "Transfer_Encoding: chunked, {mark}\r\n"), want: served},
		{name: "Content_Length", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "Content_Length: 5{mark}\r\n"), want: served},
		{name: "content_length on a POST", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\ncontent_length: 99{mark}\r\nContent-Length: 2\r\n" + closing + "{}", want: served},
		{name: "Proxy_Authorization", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "Proxy_Authorization: Basic {mark}\r\n"), want: served},
		{name: "Keep_Alive and Proxy_Connection", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "Keep_Alive: {mark}\r\nProxy_Connection: {mark}\r\n"), want: served},
		{name: "Host_ spelled with an underscore suffix", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "Transfer_encoding: {mark}\r\nTRANSFER_ENCODING: {mark}\r\n"), want: served},
	}
}

// h2Row is one attack over HTTP/2. escaped rows are forwarded with their
// marker in the request target: the back end must get it in a request
// line whose method is a token and whose target holds only RFC 3986
// bytes (the rest percent-encoded). Other rows' markers reach no back end.
type h2Row struct {
	name    string
	req     h2Request
	want    []int // 0: the stream or connection was reset
	escaped bool
	check   func(t *testing.T, a h2Answer)
}

func TestAttackForwardHTTP2(t *testing.T) {
	o, vars := startForward(t)
	refused := []int{http.StatusBadRequest}
	served := []int{http.StatusOK}
	cookie := [][2]string{{"cookie", "{cookie}"}}
	post := func(trailer ...[2]string) h2Request {
		return h2Request{Method: "POST", Path: "/hub/", Body: "{}", Trailer: trailer,
			Header: [][2]string{{"cookie", "{cookie}"}, {"content-type", "application/json"}, {"trailer", "x-qlik-user, x-forwarded-for, cookie, x-note"}}}
	}
	rows := []h2Row{
		// Item 3: :method and :path are written into a request line.
		{name: "method with a request line in it", req: h2Request{Method: "GET /../../qrs/{mark}?", Path: "/hub/", Header: cookie}, want: refused},
		{name: "method with a space and version", req: h2Request{Method: "GET /qrs/{mark} HTTP/1.1\r\nX: y", Path: "/hub/", Header: cookie}, want: []int{400, 0}},
		{name: "method is an absolute URL", req: h2Request{Method: "http://evil.example/{mark}", Path: "/hub/", Header: cookie}, want: refused},
		{name: "method in quotes", req: h2Request{Method: `"GET"`, Path: "/hub/{mark}", Header: cookie}, want: refused},
		{name: "method is a dot-dot", req: h2Request{Method: "..", Path: "/hub/{mark}", Header: cookie}, want: refused},
		{name: "method with a slash", req: h2Request{Method: "GET/..", Path: "/hub/{mark}", Header: cookie}, want: refused},
		{name: "method with a tab", req: h2Request{Method: "GET\t/qrs/", Path: "/hub/{mark}", Header: cookie}, want: []int{400, 0}},
		{name: "method on an anonymous path", req: h2Request{Method: "GET /qrs/{mark}?", Path: "/hub/"}, want: refused},
		{name: "space in the query", req: h2Request{Path: "/hub/?a= /../../qrs/{mark} HTTP/1.1", Header: cookie}, want: refused},
		{name: "space in the path", req: h2Request{Path: "/hub/ /../qrs/{mark}", Header: cookie}, want: []int{400, 0}},
		{name: "tab in the query", req: h2Request{Path: "/hub/?a=\t/qrs/{mark}", Header: cookie}, want: []int{400, 0}},
		{name: "space in the query of a POST", req: h2Request{Method: "POST", Path: "/hub/?a= /qrs/{mark}", Header: cookie, Body: "{}"}, want: refused},
		{name: "absolute :path", req: h2Request{Path: "https://evil.example/hub/{mark}", Header: cookie}, want: []int{400, 0}},
		// net/http answers OPTIONS * itself, with an empty 200.
		{name: "asterisk :path", req: h2Request{Method: "OPTIONS", Path: "*", Header: [][2]string{{"cookie", "{cookie}"}, {"x-note", "{mark}"}}}, want: []int{400, 0, 200}},
		{name: "asterisk :path on GET", req: h2Request{Path: "*", Header: [][2]string{{"cookie", "{cookie}"}, {"x-note", "{mark}"}}}, want: []int{400, 0}},
		{name: "quotes and brackets in the query", req: h2Request{Path: `/hub/?q="{mark}"<a>{b}|c\d^e` + "`", Header: cookie}, want: served, escaped: true},
		{name: "hash in the query", req: h2Request{Path: "/hub/?a=1#{mark}&b=2", Header: cookie}, want: served, escaped: true},
		{name: "raw UTF-8 in the query", req: h2Request{Path: "/hub/?q=\xc3\xa9{mark}\xff", Header: cookie}, want: served, escaped: true},
		{name: "stray percent in the query", req: h2Request{Path: "/hub/?q=%zz{mark}%u002e%", Header: cookie}, want: served, escaped: true},
		{name: "quotes and brackets in the path", req: h2Request{Path: `/hub/"{mark}"<a>{b}|c^e` + "`", Header: cookie}, want: served, escaped: true},
		{name: "raw UTF-8 in the path", req: h2Request{Path: "/hub/\xc3\xa9{mark}", Header: cookie}, want: served, escaped: true},
		{name: "odd query bytes on a POST", req: h2Request{Method: "POST", Path: `/hub/?q="{mark}"<>`, Header: cookie, Body: "{}"}, want: served, escaped: true},

		// Item 2: trailers over HTTP/2.
		{name: "identity in HTTP/2 trailers", req: post([2]string{"x-qlik-user", "UserDirectory={mark}; UserId=sa"}, [2]string{"x-forwarded-for", "{mark}"}), want: served},
		{name: "session cookie in HTTP/2 trailers", req: post([2]string{"cookie", "X-Qlik-Session-sessionvp={mark}"}, [2]string{"x-note", "{mark}"}), want: served},

		// Item 5: cookies arrive in several fields over HTTP/2.
		{name: "other VPs' cookies in separate fields", req: h2Request{Path: "/hub/", Header: [][2]string{{"cookie", "{cookie}"}, {"cookie", "X-Qlik-Session-sessionvp={mark}"}, {"cookie", "X-Qlik-Session-auth={mark}; a=1"}}}, want: served},

		// Item 11: :authority is the Host.
		{name: "foreign :authority with a session", req: h2Request{Path: "/hub/", Authority: "{mark}.evil.example", Header: cookie}, want: served},
		{name: "allowed :authority with a port of userinfo", req: h2Request{Path: "/hub/", Authority: "localhost:1@{mark}.evil.example", Header: cookie}, want: []int{200, 400, 0}},
		{name: "foreign :authority on the personal API", req: h2Request{Path: "/qps/user", Authority: "{mark}.evil.example", Header: cookie}, want: served,
			check: func(t *testing.T, a h2Answer) {
				if strings.Contains(a.Body, "evil.example") {
					t.Errorf("the personal API echoes the foreign :authority: %s", a.Body)
				}
			}},

		// Item 15 over HTTP/2: names arrive in lower case.
		{name: "header-auth header over HTTP/2", req: h2Request{Path: "/hub/", Header: [][2]string{{"cookie", "{cookie}"}, {"x-remote-user", "{mark}"}, {"x_remote_user", "{mark}"}, {"transfer_encoding", "{mark}"}, {"content_length", "{mark}"}}}, want: served},
	}
	for i, row := range rows {
		mark := "zqfwd" + strconv.Itoa(100+i) + randomHex(3)
		t.Run(row.name, func(t *testing.T) {
			all := attackVars(t, o, nil, mark, vars)
			fill := func(s string) string {
				for k, v := range all {
					s = strings.ReplaceAll(s, k, v)
				}
				return s
			}
			req := row.req
			req.Method, req.Path, req.Authority = fill(req.Method), fill(req.Path), fill(req.Authority)
			req.Header, req.Trailer = fillFields(req.Header, fill), fillFields(req.Trailer, fill)
			a := h2Send(t, o.FrontendAddr, o.frontTLS(), req)
			if !containsInt(row.want, a.Status) {
				t.Errorf("status %d (%s), want one of %v; body %.300q", a.Status, a.Reset, row.want, a.Body)
			}
			if a.Status == http.StatusBadRequest && !strings.Contains(a.Body, `"detail"`) {
				t.Errorf("a refusal without a JSON detail: %.300q", a.Body)
			}
			if row.check != nil {
				row.check(t, a)
			}
			if row.escaped {
				attackTargetEscaped(t, o, mark)
				return
			}
			attackNeverReachedBackend(t, o, mark, false)
		})
	}
}

func fillFields(ff [][2]string, fill func(string) string) [][2]string {
	var out [][2]string
	for _, f := range ff {
		out = append(out, [2]string{fill(f[0]), fill(f[1])})
	}
	return out
}

// TestAttackForwardedTargetIsEscaped: bytes outside RFC 3986's query set
// that an HTTP/1.1 request line can carry (quotes, brackets, a hash, raw
// UTF-8, a stray percent) reach the back end percent-encoded.
func TestAttackForwardedTargetIsEscaped(t *testing.T) {
	o, vars := startForward(t)
	for i, target := range []string{
		`/hub/?q="{mark}"<a>{b}|c\d^e` + "`",
		"/hub/?a=1#{mark}",
		"/hub/?q=\xc3\xa9{mark}\xff",
		"/hub/?q=%zz{mark}%u002e%",
		"/sessionvp/hub/x?{mark}=[1]&b='2'",
	} {
		mark := "zqesc" + strconv.Itoa(100+i) + randomHex(3)
		t.Run(target, func(t *testing.T) {
			raw := "GET " + target + " HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}; {svcookie}\r\nConnection: close\r\n\r\n"
			for k, v := range attackVars(t, o, nil, mark, vars) {
				raw = strings.ReplaceAll(raw, k, v)
			}
			answers := attackSend(t, o.FrontendAddr, o.frontTLS(), raw)
			if len(answers) == 0 || answers[0].resp.StatusCode != http.StatusOK {
				t.Fatalf("answers %v, want 200", answers)
			}
			attackTargetEscaped(t, o, mark)
		})
	}
}

// attackTargetEscaped checks that mark reached the back end exactly once,
// in a request line of a token method and an RFC 3986 target.
func attackTargetEscaped(t *testing.T, o *openqps, mark string) {
	t.Helper()
	raw := o.Backend.received()
	lines := bytes.Split(raw, []byte("\r\n"))
	found := 0
	for _, l := range lines {
		if !bytes.Contains(l, []byte(mark)) {
			continue
		}
		found++
		l = bytes.TrimLeft(l, "\n") // received() puts one between connections
		method, rest, _ := strings.Cut(string(l), " ")
		target, proto, _ := strings.Cut(rest, " ")
		if !attackToken(method) || !attackRFC3986Target(target) || proto != "HTTP/1.1" {
			t.Errorf("the back end got the request line %q", l)
		}
	}
	if found != 1 {
		t.Errorf("the marker reached the back end in %d lines, want 1 (its request line)", found)
	}
}

func attackToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// attackRFC3986Target reports whether s is an origin-form target of
// RFC 3986 path and query bytes, every % starting an escape.
func attackRFC3986Target(s string) bool {
	if !strings.HasPrefix(s, "/") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~!$&'()*+,;=:@/?", c) >= 0:
		case c == '%' && i+2 < len(s) && isHexDigit(s[i+1]) && isHexDigit(s[i+2]):
		default:
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// TestAttackHeaderAuthHeaderStaysAtTheFront: the header-auth virtual
// proxy's own back end gets the user as X-Qlik-User, not the header it
// was read from (that header is the front's credential, and a back end
// that trusted it would be open to anyone who reaches it past openqps).
func TestAttackHeaderAuthHeaderStaysAtTheFront(t *testing.T) {
	o, _ := startForward(t)
	b := o.browser(t)
	resp, body := get(t, b, o.frontURL("/auth/hub/"), "X-Remote-User", "alice", "X_Remote_User", "mallory")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	got := o.Backend.last(t)
	if u := got.Header.Get("X-Qlik-User"); u != "UserDirectory=ACME; UserId=alice" {
		t.Errorf("X-Qlik-User %q", u)
	}
	for k := range got.Header {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Remote-User") {
			t.Errorf("the back end got %s: %v", k, got.Header[k])
		}
	}
}

// TestAttackAttributesCannotOverrideSecurityFields: an attribute named
// Context or SecureRequest (any case, or percent-encoded) never stands
// next to openqps's own fields in X-Qlik-Security. The session API
// refuses such attributes; one that reached a session another way (a
// store written by an older openqps, a JWT claim mapped to that name) is
// renamed when the header is built.
func TestAttackAttributesCannotOverrideSecurityFields(t *testing.T) {
	o, _ := startForward(t)
	for _, key := range []string{"Context", "context", "SECUREREQUEST", "Cont%65xt", "SecureRequest", " context "} {
		_, err := o.API.AddSession(context.Background(), "sessionvp", qpsapiUser("Mallory", randomHex(16), key))
		if err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("session API with attribute %q: %v, want 400", key, err)
		}
		_, err = o.API.Ticket(context.Background(), "sessionvp", qpsapiUser("Mallory", "", key))
		if err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("ticket API with attribute %q: %v, want 400", key, err)
		}
	}
	id := randomHex(16)
	now := o.Clock.Now()
	err := o.Store.Add(context.Background(), session.Session{Prefix: "sessionvp", ID: id, UserDirectory: "DOMAIN", UserID: "Mallory",
		Created: now, LastUsed: now, Timeout: time.Hour, Attributes: []session.Attribute{
			{Key: "Context", Value: "ManagementAccess"}, {Key: "securerequest", Value: "false"},
			{Key: "Cont%65xt", Value: "ManagementAccess"}, {Key: "Group", Value: "Sales"}}})
	if err != nil {
		t.Fatal(err)
	}
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)
	if resp, body := get(t, b, o.frontURL("/sessionvp/hub/")); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	sec := o.Backend.last(t).Header.Get("X-Qlik-Security")
	fields := map[string][]string{}
	for _, f := range strings.Split(sec, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		for range 2 { // a back end may decode twice
			if d, err := url.QueryUnescape(k); err == nil {
				k = d
			}
		}
		fields[strings.ToLower(k)] = append(fields[strings.ToLower(k)], v)
	}
	if c := fields["context"]; len(c) != 1 || c[0] != "AppAccess" {
		t.Errorf("Context fields %v in %q", c, sec)
	}
	if s := fields["securerequest"]; len(s) != 1 || s[0] != "true" {
		t.Errorf("SecureRequest fields %v in %q", s, sec)
	}
	if g := fields["group"]; len(g) != 1 || g[0] != "Sales" {
		t.Errorf("Group fields %v in %q", g, sec)
	}
}

func qpsapiUser(user, id string, attribute string) qpsapi.UserRequest {
	return qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: user, SessionId: id, Attributes: qpsapi.Attributes{{Key: attribute, Value: "ManagementAccess"}}}
}
