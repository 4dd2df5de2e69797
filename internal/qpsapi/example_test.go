package qpsapi_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"

	"github.com/openqps/openqps/internal/qpsapi"
)

// A trusted-API call carries the same 16-character key in the query and in
// the X-Qlik-Xrfkey header; CheckXrfkey says which rule a call breaks.
func ExampleCheckXrfkey() {
	ok := httptest.NewRequest("POST", "/qps/session?Xrfkey=abcdefghijklmnop", nil)
	ok.Header.Set("X-Qlik-Xrfkey", "abcdefghijklmnop")
	fmt.Println(qpsapi.CheckXrfkey(ok))

	mismatch := httptest.NewRequest("POST", "/qps/session?xrfkey=abcdefghijklmnop", nil)
	mismatch.Header.Set("X-Qlik-Xrfkey", "ABCDEFGHIJKLMNOP")
	fmt.Println(qpsapi.CheckXrfkey(mismatch))
	// Output:
	// <nil>
	// XSRF prevention check failed: the xrfkey query parameter and the X-Qlik-Xrfkey header differ
}

// Attributes keep QPS's shape: an ordered list of one-key objects whose
// keys may repeat.
func ExampleAttributes() {
	var req qpsapi.UserRequest
	json.Unmarshal([]byte(`{"userId":"User1","Attributes":[{"Group":"A"},{"Group":"B"},{"Email":""}]}`), &req)
	out, _ := json.Marshal(req.Attributes)
	fmt.Println(req.UserId, string(out))
	// Output: User1 [{"Group":"A"},{"Group":"B"},{"Email":""}]
}
