package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/openqps/openqps/internal/qpsapi"
)

// apiDocument is the trusted API's OpenAPI document, loaded and checked
// once, with a router over its paths.
var apiDocument = sync.OnceValues(func() (*apiSpec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(qpsapi.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.yaml is no valid OpenAPI document: %w", err)
	}
	// The tests reach the listener on 127.0.0.1 and a free port, not the
	// server the document names.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &apiSpec{doc: doc, router: router}, nil
})

type apiSpec struct {
	doc    *openapi3.T
	router routers.Router
}

// openAPITransport checks every trusted-API answer that passes through it
// against the OpenAPI document, so that the document cannot drift from
// what openqps sends. A mismatch fails the test; the answer is passed on
// as it came. Requests to other addresses than the API's (a test that
// reuses an API client's certificates on the front end) pass unchecked.
type openAPITransport struct {
	t       testing.TB
	apiAddr string
	next    http.RoundTripper
}

func validatingTransport(t testing.TB, apiAddr string, next http.RoundTripper) http.RoundTripper {
	return &openAPITransport{t: t, apiAddr: apiAddr, next: next}
}

func (v *openAPITransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.next.RoundTrip(req)
	if err != nil || req.URL.Host != v.apiAddr {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := checkAnswer(req, resp, body); err != nil {
		v.t.Errorf("the trusted API's answer to %s %s does not match internal/qpsapi/openapi.yaml: %v\nstatus %d, body %.300s",
			req.Method, req.URL.Path, err, resp.StatusCode, body)
	}
	return resp, nil
}

// checkAnswer validates one answer. A path the document does not name
// (mistyped, or of no route) must be answered by a rejection in the
// document's Error shape.
func checkAnswer(req *http.Request, resp *http.Response, body []byte) error {
	spec, err := apiDocument()
	if err != nil {
		return err
	}
	// The API matches resource names and prefixes in any case and
	// ignores empty segments; the router matches the document's spelling.
	routeReq := req.Clone(context.Background())
	routeReq.URL = &url.URL{Path: routePath(req.URL.EscapedPath())}
	route, params, err := spec.router.FindRoute(routeReq)
	if err != nil {
		if resp.StatusCode < 400 {
			return fmt.Errorf("status %d for a call the document does not describe (%v)", resp.StatusCode, err)
		}
		if req.Method == http.MethodHead {
			return nil
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("rejection is no JSON: %w", err)
		}
		return spec.doc.Components.Schemas["Error"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: routeReq, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus:   true,
			MultiError:              true,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.EnableJSONSchema2020()},
		},
	}
	if req.Method == http.MethodHead {
		in.Options.ExcludeResponseBody = true
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// routePath lower-cases the resource and prefix segments of an API path
// and drops empty ones, as the API's own router does (qpsapi.parseRoute).
func routePath(escaped string) string {
	var segs []string
	for _, s := range strings.Split(escaped, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	for i := 0; i < len(segs) && i < 3; i++ {
		segs[i] = strings.ToLower(segs[i])
	}
	return "/" + strings.Join(segs, "/")
}

// CloseIdleConnections passes http.Client.CloseIdleConnections on.
func (v *openAPITransport) CloseIdleConnections() {
	if c, ok := v.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
