package qpsapi

import (
	_ "embed"
	"net/http"
	"strconv"

	"github.com/openqps/openqps/internal/httperror"
)

// OpenAPI is the OpenAPI 3.1 document of the trusted API: QPS's calls and
// openqps's own under /openqps/, with the shapes this package sends. The
// end-to-end tests validate every answer they get against it.
//
//go:embed openapi.yaml
var OpenAPI []byte

// OpenAPIPath is where the trusted API listener serves OpenAPI. Like
// ReloadPath it lies outside /qps/, so it is never taken for a prefix.
const OpenAPIPath = "/openqps/openapi.yaml"

// WithOpenAPI serves OpenAPI at OpenAPIPath and hands every other path to
// next. The document is no secret, but it stays behind the listener's
// client certificate like every trusted call; it needs no Xrfkey, as
// reading it changes nothing.
func WithOpenAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != OpenAPIPath {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httperror.WriteJSON(w, http.StatusMethodNotAllowed, "method not allowed", "GET "+OpenAPIPath)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/yaml")
		h.Set("Content-Length", strconv.Itoa(len(OpenAPI)))
		h.Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(OpenAPI)
		}
	})
}
