package httperror_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/openqps/openqps/internal/httperror"
)

// TestWriteJSONIsOneCompactBody: the body clients parse, exactly, with
// its length, not cached.
func TestWriteJSONIsOneCompactBody(t *testing.T) {
	w := httptest.NewRecorder()
	httperror.WriteJSON(w, http.StatusForbidden, "xrfkey", `the X-Qlik-Xrfkey header and the "xrfkey" parameter differ`)
	const want = `{"error":"xrfkey","detail":"the X-Qlik-Xrfkey header and the \"xrfkey\" parameter differ"}`
	if w.Code != http.StatusForbidden || w.Body.String() != want {
		t.Errorf("%d %s, want 403 %s", w.Code, w.Body, want)
	}
	for name, value := range map[string]string{"Content-Type": "application/json; charset=utf-8", "Content-Length": strconv.Itoa(len(want)), "Cache-Control": "no-store"} {
		if got := w.Header().Get(name); got != value {
			t.Errorf("%s: %q, want %q", name, got, value)
		}
	}
}

// TestWriteAnswersBrowsersWithAPage: Accept: text/html gets the page,
// with the caller's text escaped; anything else the JSON body.
func TestWriteAnswersBrowsersWithAPage(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/hub/", nil)
	r.Header.Set("Accept", "text/html,application/xhtml+xml")
	w := httptest.NewRecorder()
	httperror.Write(w, r, http.StatusBadRequest, "invalid path", "<script>x</script>")
	if w.Code != http.StatusBadRequest || w.Header().Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(w.Body.String(), "<h1>400 — invalid path</h1>") || strings.Contains(w.Body.String(), "<script>") {
		t.Errorf("browser: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	r.Header.Set("Accept", "*/*")
	w = httptest.NewRecorder()
	httperror.Write(w, r, http.StatusBadRequest, "invalid path", "d")
	if w.Body.String() != `{"error":"invalid path","detail":"d"}` {
		t.Errorf("client: %s", w.Body)
	}
}

func TestWriteRetryLinksABrowserToTryAgain(t *testing.T) {
	browser := httptest.NewRequest("GET", "/", nil)
	browser.Header.Set("Accept", "text/html")
	w := httptest.NewRecorder()
	httperror.WriteRetry(w, browser, http.StatusForbidden, "login refused", "the identity provider said no.", "https://proxy.example/sales/hub/?a=1&b=<2>")
	if body := w.Body.String(); !strings.Contains(body, `<a href="https://proxy.example/sales/hub/?a=1&amp;b=%3c2%3e">Try again</a>`) {
		t.Errorf("page without an escaped link to try again:\n%s", body)
	}
	w = httptest.NewRecorder()
	httperror.Write(w, browser, http.StatusForbidden, "login refused", "no")
	if strings.Contains(w.Body.String(), "Try again") {
		t.Errorf("a page without a retry URL offers one:\n%s", w.Body.String())
	}
}
