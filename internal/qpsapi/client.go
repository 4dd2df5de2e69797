package qpsapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls the trusted API the way a login module does: over mutual
// TLS, with a fresh Xrfkey on every call. The CLI, the demo login module
// and the tests use it. It is safe for concurrent use.
type Client struct {
	base string // e.g. https://localhost:4243
	http *http.Client
}

// NewClient returns a client for the API at base (scheme, host and port)
// presenting the client certificate in tlsConf.
func NewClient(base string, tlsConf *tls.Config) *Client {
	return &Client{
		base: strings.TrimSuffix(base, "/"),
		http: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: tlsConf, MaxIdleConnsPerHost: 16, ForceAttemptHTTP2: true},
		},
	}
}

// CloseIdleConnections closes the client's idle keep-alive connections,
// so a server shutting down need not wait for them.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// NewClientHTTP returns a client for the API at base that sends its calls
// through hc (whose transport must present the client certificate).
func NewClientHTTP(base string, hc *http.Client) *Client {
	return &Client{base: strings.TrimSuffix(base, "/"), http: hc}
}

// APIError is a rejection by the API.
type APIError struct {
	Status int
	Err    string `json:"error"`
	Detail string `json:"detail"`
}

func (e *APIError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, e.Err, e.Detail)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Err)
}

// AddSession creates a session (POST /qps/{prefix}/session).
func (c *Client) AddSession(ctx context.Context, prefix string, req UserRequest) (SessionInfo, error) {
	var out SessionInfo
	err := c.do(ctx, http.MethodPost, prefix, "session", req, &out)
	return out, err
}

// GetSession returns a session, or nil when it does not exist.
func (c *Client) GetSession(ctx context.Context, prefix, id string) (*SessionInfo, error) {
	var out *SessionInfo
	err := c.do(ctx, http.MethodGet, prefix, "session/"+url.PathEscape(id), nil, &out)
	return out, err
}

// DeleteSession ends a session and returns it.
func (c *Client) DeleteSession(ctx context.Context, prefix, id string) (SessionInfo, error) {
	var out SessionInfo
	err := c.do(ctx, http.MethodDelete, prefix, "session/"+url.PathEscape(id), nil, &out)
	return out, err
}

// ListSessions returns every session of a virtual proxy.
func (c *Client) ListSessions(ctx context.Context, prefix string) ([]SessionInfo, error) {
	var out []SessionInfo
	err := c.do(ctx, http.MethodGet, prefix, "session", nil, &out)
	return out, err
}

// UserSessions returns the sessions of a user.
func (c *Client) UserSessions(ctx context.Context, prefix, dir, user string) ([]SessionInfo, error) {
	var out []SessionInfo
	err := c.do(ctx, http.MethodGet, prefix, "user/"+url.PathEscape(dir)+"/"+url.PathEscape(user), nil, &out)
	return out, err
}

// LogoutUser ends every session of a user and returns them.
func (c *Client) LogoutUser(ctx context.Context, prefix, dir, user string) ([]SessionInfo, error) {
	var out []SessionInfo
	err := c.do(ctx, http.MethodDelete, prefix, "user/"+url.PathEscape(dir)+"/"+url.PathEscape(user), nil, &out)
	return out, err
}

// Ticket asks for a login ticket (POST /qps/{prefix}/ticket).
func (c *Client) Ticket(ctx context.Context, prefix string, req UserRequest) (TicketInfo, error) {
	var out TicketInfo
	err := c.do(ctx, http.MethodPost, prefix, "ticket", req, &out)
	return out, err
}

// Alive calls GET /qps/alive.
func (c *Client) Alive(ctx context.Context) error {
	var out map[string]bool
	return c.do(ctx, http.MethodGet, "", "alive", nil, &out)
}

// Path returns the API path of a resource in a virtual proxy.
func Path(prefix, resource string) string {
	if prefix == "" {
		return "/qps/" + resource
	}
	return "/qps/" + prefix + "/" + resource
}

func (c *Client) do(ctx context.Context, method, prefix, resource string, in, out any) error {
	key := NewXrfkey()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+Path(prefix, resource)+"?xrfkey="+key, body)
	if err != nil {
		return err
	}
	req.Header.Set(XrfkeyHeader, key)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Err == "" {
			e.Err = strings.TrimSpace(string(data))
		}
		return e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s %s answer: %w", method, resource, err)
	}
	return nil
}

// NewXrfkey returns a random 16-character Xrfkey.
func NewXrfkey() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [16]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}
