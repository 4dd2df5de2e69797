package proxy

import (
	"slices"
	"strings"
	"testing"
)

func TestCleanPath(t *testing.T) {
	cases := []struct {
		decoded, escaped, want string
		bad                    bool
	}{
		{decoded: "/vp/hub/", escaped: "/vp/hub/", want: "/vp/hub/"},
		{decoded: "/vp//hub///x", escaped: "/vp//hub///x", want: "/vp/hub/x"},
		{decoded: "/vp/a b", escaped: "/vp/a%20b", want: "/vp/a b"},
		{decoded: "/vp/../qrs", escaped: "/vp/../qrs", bad: true},
		{decoded: "/vp/../qrs", escaped: "/vp/%2e%2e/qrs", bad: true},
		{decoded: "/vp/./x", escaped: "/vp/./x", bad: true},
		{decoded: "/vp/..", escaped: "/vp/..", bad: true},
		{decoded: "/vp/a/b", escaped: "/vp/a%2Fb", bad: true},
		{decoded: `/vp/a\b`, escaped: "/vp/a%5Cb", bad: true},
		{decoded: `/vp\..\qrs`, escaped: `/vp\..\qrs`, bad: true},
		{decoded: "/vp;jsessionid=1/x", escaped: "/vp;jsessionid=1/x", bad: true},
		{decoded: "/vp/\x00", escaped: "/vp/%00", bad: true},
		{decoded: "/vp/\xc0\xae", escaped: "/vp/%c0%ae", bad: true},
		{decoded: "relative", escaped: "relative", bad: true},
		{decoded: "/vp/..a/x", escaped: "/vp/..a/x", want: "/vp/..a/x"},
		{decoded: "/vp/%2e%2e/qrs", escaped: "/vp/%252e%252e/qrs", bad: true},
		{decoded: "/vp/a%2Fb", escaped: "/vp/a%252Fb", bad: true},
		{decoded: "/vp/100%", escaped: "/vp/100%25", want: "/vp/100%"},
		{decoded: "/vp/50%off", escaped: "/vp/50%25off", want: "/vp/50%off"},
	}
	for _, c := range cases {
		got, err := cleanPath(c.decoded, c.escaped)
		if c.bad {
			if err == nil {
				t.Errorf("%q: accepted as %q", c.escaped, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.escaped, got, err, c.want)
		}
	}
}

func TestCookieValues(t *testing.T) {
	var got []string
	cookieValues([]string{`a=1; X-Qlik-Session=first`, `X-Qlik-Session="second"; X-Qlik-Session-vp=other`}, "X-Qlik-Session", func(v string) bool {
		got = append(got, v)
		return false
	})
	if len(got) != 2 || got[0] != "first" || got[1] != "second" {
		t.Errorf("values %q", got)
	}
	names := []string{"X-Qlik-Session", "X-Qlik-Session-HTTP", "X-Qlik-Session-vp", "X-Qlik-Session-vp-HTTP"}
	kept := withoutSessionCookies([]string{"a=1; X-Qlik-Session=s; b=2", "X-Qlik-Session=t", "x-qlik-session-VP=u;c=3", " X-Qlik-Session-vp-HTTP =v; d=4 "}, names)
	if want := []string{"a=1; b=2", "c=3", "d=4"}; !slices.Equal(kept, want) {
		t.Errorf("withoutSessionCookies %q, want %q", kept, want)
	}
	untouched := []string{"theme=dark; X-Qlik-Sessionx=1", "K=1"}
	if kept := withoutSessionCookies(untouched, names); &kept[0] != &untouched[0] {
		t.Errorf("a header without session cookies was copied: %q", kept)
	}
}

func TestQueryParamFold(t *testing.T) {
	for _, q := range []string{"QlikTicket=T1", "qlikticket=T1", "sheet=x&qlikTicket=T1", "qlikTicket=T1&sheet=x"} {
		v, rest, ok := queryParamFold(q, "qlikticket")
		if !ok || v != "T1" || containsFold(rest, "qlikticket") {
			t.Errorf("%q: %q %q %v", q, v, rest, ok)
		}
	}
	if _, _, ok := queryParamFold("sheet=qlikticket", "qlikticket"); ok {
		t.Error("a value was taken for a name")
	}
}

func TestCheckRequestLine(t *testing.T) {
	for _, c := range []struct {
		method, target string
		ok             bool
	}{
		{"GET", "/hub/?a=1", true},
		{"PROPFIND", "/x", true},
		{"get", "/x", true},
		{"M-SEARCH", "*", true}, // the target's form is the guard's business
		{"GET /../../qrs/about?", "/hub/", false},
		{"..", "/hub/", false},
		{`"GET"`, "/hub/", false},
		{"http://evil.example/", "/hub/", false},
		{"GET/..", "/hub/", false},
		{"", "/hub/", false},
		{"1GET", "/hub/", false},
		{strings.Repeat("A", 33), "/", false},
		{"GET", "/hub/? /../qrs HTTP/1.1", false},
		{"GET", "/hub/ x", false},
		{"GET", "/hub/?a=\tb", false},
		{"GET", "/hub/?a=\x7f", false},
		{"GET", "/hub/?a=\x00", false},
	} {
		if err := checkRequestLine(c.method, c.target); (err == nil) != c.ok {
			t.Errorf("checkRequestLine(%q, %q) = %v, want ok %v", c.method, c.target, err, c.ok)
		}
	}
}

func TestUpstreamQuery(t *testing.T) {
	for raw, want := range map[string]string{
		"":                                    "",
		"a=1&b=%2F&c=d/e?f:g@h!$'()*+,;=~-._": "a=1&b=%2F&c=d/e?f:g@h!$'()*+,;=~-._",
		`q="x"<a>{b}|c\d^e` + "`":             "q=%22x%22%3Ca%3E%7Bb%7D%7Cc%5Cd%5Ee%60",
		"a=1#frag":                            "a=1%23frag",
		"q=\xc3\xa9\xff":                      "q=%C3%A9%FF",
		"q=%zz%u002e%4":                       "q=%25zz%25u002e%254",
		"q=%4a%4A":                            "q=%4a%4A",
		"a= b":                                "a=%20b",
	} {
		if got := upstreamQuery(raw); got != want {
			t.Errorf("upstreamQuery(%q) = %q, want %q", raw, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { upstreamQuery("sheet=abc&opt=ctxmenu,currsel") }); n != 0 {
		t.Errorf("a clean query costs %v allocations", n)
	}
}

// FuzzUpstreamQuery: whatever the client's query, what goes to the back
// end holds only RFC 3986 query bytes, every % starts an escape, and it
// decodes to what the client sent.
func FuzzUpstreamQuery(f *testing.F) {
	for _, s := range []string{"a=1", "q=\"x\" <y>", "%", "%zz", "%4", "a#b", "\xff\x00", "a=%2F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := upstreamQuery(raw)
		for i := 0; i < len(got); i++ {
			if !queryByte(got, i) {
				t.Fatalf("upstreamQuery(%q) = %q: byte %d (%q) is not a query byte", raw, got, i, got[i])
			}
		}
		if upstreamQuery(got) != got {
			t.Fatalf("upstreamQuery(%q) = %q is not stable", raw, got)
		}
		if lenientUnescape(got) != lenientUnescape(raw) {
			t.Fatalf("upstreamQuery(%q) = %q means something else", raw, got)
		}
	})
}

// lenientUnescape decodes each %HH and keeps every other byte, as a
// lenient back end reads a query.
func lenientUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v := strings.IndexByte("0123456789abcdef", s[i+1]|0x20)<<4 | strings.IndexByte("0123456789abcdef", s[i+2]|0x20)
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
