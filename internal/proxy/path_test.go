package proxy

import "testing"

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
	kept := withoutCookie([]string{"a=1; X-Qlik-Session=s; b=2", "X-Qlik-Session=t"}, "X-Qlik-Session")
	if len(kept) != 1 || kept[0] != "a=1; b=2" {
		t.Errorf("withoutCookie %q", kept)
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
