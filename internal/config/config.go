// Package config reads openqps's YAML configuration, fills in defaults and
// validates it once, up front, so the request path can trust every value.
// Errors name the offending key and its line in the file.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of one openqps process.
type Config struct {
	DataDir        string         `yaml:"data_dir"`
	Frontend       Frontend       `yaml:"frontend"`
	API            API            `yaml:"api"`
	TLS            TLS            `yaml:"tls"`
	Store          Store          `yaml:"store"`
	Sessions       Sessions       `yaml:"sessions"`
	Log            Log            `yaml:"log"`
	Metrics        Metrics        `yaml:"metrics"`
	Audit          Audit          `yaml:"audit"`
	Timeouts       Timeouts       `yaml:"timeouts"`
	VirtualProxies []VirtualProxy `yaml:"virtual_proxies"`

	// Demo is true when no configuration file was given: the built-in
	// hub back end and login module are started and used by the virtual
	// proxies that name no back end or authentication module.
	Demo bool `yaml:"-"`
}

// Frontend is the browser-facing listener.
type Frontend struct {
	Listen string `yaml:"listen"` // HTTPS, e.g. ":8443"
	// PublicURL is the base URL browsers use to reach the front end, used
	// for TargetUri when the request's own host is not what browsers see
	// (behind a load balancer). Empty: taken from the request.
	PublicURL string `yaml:"public_url"`
	// HTTPListen is an optional plain-HTTP listener; its session cookies
	// get QPS's "-HTTP" suffix.
	HTTPListen string `yaml:"http_listen"`
	// ShutdownTimeout bounds how long a graceful shutdown waits for
	// in-flight requests.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// API is the trusted, mutually authenticated API (QPS port 4243).
type API struct {
	Listen string `yaml:"listen"`
	// PublicURL is the base of proxyRestUri given to login modules; empty
	// means https://<request host name>:<api port>.
	PublicURL string `yaml:"public_url"`
	// MaxBodyBytes is the largest request body accepted (413 above it).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// TLS names user-supplied certificates. When all are empty, openqps
// generates a CA and certificates into <data_dir>/certs on first start.
type TLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Store selects where sessions are kept.
type Store struct {
	Type string `yaml:"type"` // memory | embedded | redis
	// MaxSessions caps the sessions this store holds (adds beyond it are
	// answered 429); 0 is no cap. With Redis the cap is per node's view of
	// the shared count.
	MaxSessions int `yaml:"max_sessions"`
	// LastUseFlush is how often last-use times are written to the durable
	// store, and their precision: after a crash a session may expire up
	// to about twice this early. 0 is 5s.
	LastUseFlush time.Duration `yaml:"last_use_flush"`
	Redis        Redis         `yaml:"redis"`
}

// Redis configures the Redis store.
type Redis struct {
	Addresses      []string `yaml:"addresses"`
	SentinelMaster string   `yaml:"sentinel_master"`
	Username       string   `yaml:"username"`
	Password       string   `yaml:"password"`
	TLS            bool     `yaml:"tls"`
	KeyPrefix      string   `yaml:"key_prefix"`
}

// Sessions holds settings shared by all virtual proxies.
type Sessions struct {
	// MinIDLength is the shortest SessionId the session API accepts from
	// a login module.
	MinIDLength int `yaml:"min_id_length"`
	// TicketTTL is how long a ticket can be redeemed (QPS: one minute).
	TicketTTL time.Duration `yaml:"ticket_ttl"`
	// TargetTTL is how long a targetId maps to the original URL.
	TargetTTL time.Duration `yaml:"target_ttl"`
	// MaxPerUser caps parallel sessions per user per virtual proxy; 0 is
	// no cap.
	MaxPerUser int `yaml:"max_per_user"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Metrics is the operations listener: Prometheus /metrics, /healthz and
// /readyz. It is never served on the public front end.
type Metrics struct {
	Listen string `yaml:"listen"` // e.g. "127.0.0.1:9090"; empty: off
}

// Audit is where the audit log (JSON lines) goes. Its events are in the
// process log too; the audit log is a stream of its own for log
// pipelines and SIEM rules, written whatever the log level.
type Audit struct {
	File string `yaml:"file"` // a path, "-" for standard output; empty: no audit stream of its own
}

// VirtualProxy is one virtual proxy, selected by the first path segment.
type VirtualProxy struct {
	Prefix                          string        `yaml:"prefix"`
	Description                     string        `yaml:"description"`
	SessionCookieName               string        `yaml:"session_cookie_name"`
	SessionCookieDomain             string        `yaml:"session_cookie_domain"`
	SessionInactivityTimeout        time.Duration `yaml:"session_inactivity_timeout"`
	AuthenticationModuleRedirectURI string        `yaml:"authentication_module_redirect_uri"`
	Backends                        []string      `yaml:"backends"`

	// Authentication (issue: ticket API and other methods). Validated in
	// auth.go.
	Auth Auth `yaml:",inline"`
	// Proxying: load balancing, health, websockets, cookies and response
	// headers. Validated in proxying.go.
	Proxying Proxying `yaml:",inline"`

	// BackendURLs are the parsed Backends, filled in by validation.
	BackendURLs []*url.URL `yaml:"-"`
}

// Defaults used where the file says nothing.
const (
	DefaultDataDir        = "openqps-data"
	DefaultFrontendListen = ":8443"
	DefaultAPIListen      = ":4243"
	DefaultTimeout        = 30 * time.Minute
	DefaultMinIDLength    = 16
	DefaultTicketTTL      = time.Minute
	DefaultTargetTTL      = 10 * time.Minute
	DefaultMaxBodyBytes   = 64 << 10
	// DefaultShutdownTimeout bounds a graceful shutdown.
	DefaultShutdownTimeout = 30 * time.Second
	DemoLoginPath          = "/demo-login/"
)

// ReservedPrefixes may not be used as virtual proxy prefixes: they are
// resource names of the trusted API (/qps/{resource}) or paths QPS
// reserves on the front end.
var ReservedPrefixes = map[string]bool{
	"qps": true, "session": true, "ticket": true, "user": true, "alive": true,
	"error": true, "qrs": true, "qmc": true, "hub": true, "app": true,
	"resources": true, "api": true, "sense": true, "demo-login": true,
	"csrftoken": true, "restarted": true,
}

var prefixPattern = regexp.MustCompile(`^[a-z0-9._~-]+$`)

// Demo returns the configuration openqps runs with when no file is
// given: the default virtual proxy and "sessionvp" and "ticketvp", all
// served by the built-in demo hub and login module.
func Demo() *Config {
	c := &Config{Demo: true}
	c.Metrics.Listen = DemoMetricsListen
	c.VirtualProxies = []VirtualProxy{
		{Prefix: "", Description: "default virtual proxy (demo)"},
		{Prefix: "sessionvp", Description: "session API login (demo)"},
		{Prefix: "ticketvp", Description: "ticket API login (demo)"},
	}
	if err := c.finish(nil); err != nil {
		panic("demo configuration invalid: " + err.Error())
	}
	return c
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a configuration. Unknown keys are errors.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, cleanYAMLError(err)
	}
	c := &Config{}
	if len(root.Content) > 0 {
		if err := decodeStrict(data, c); err != nil {
			return nil, err
		}
	}
	if err := c.finish(&root); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeStrict(data []byte, c *Config) error {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return cleanYAMLError(err)
	}
	return nil
}

// cleanYAMLError turns yaml.v3's messages ("line 3: field foo not found in
// type config.Frontend") into ones that name the key as written.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	if i := strings.Index(msg, " not found in type "); i >= 0 {
		// "line 3: field foo not found in type config.Frontend"
		msg = msg[:i] + " is not a known key"
		msg = strings.Replace(msg, "field ", "key ", 1)
	}
	return errors.New(msg)
}

// finish fills defaults and validates. root, when not nil, is the parsed
// document, used to put line numbers on errors.
func (c *Config) finish(root *yaml.Node) error {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Frontend.Listen == "" {
		c.Frontend.Listen = DefaultFrontendListen
	}
	if c.API.Listen == "" {
		c.API.Listen = DefaultAPIListen
	}
	if c.Frontend.ShutdownTimeout == 0 {
		c.Frontend.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.API.MaxBodyBytes == 0 {
		c.API.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Store.Type == "" {
		c.Store.Type = "embedded"
	}
	if c.Store.Redis.KeyPrefix == "" {
		c.Store.Redis.KeyPrefix = "openqps:"
	}
	if c.Sessions.MinIDLength == 0 {
		c.Sessions.MinIDLength = DefaultMinIDLength
	}
	if c.Sessions.TicketTTL == 0 {
		c.Sessions.TicketTTL = DefaultTicketTTL
	}
	if c.Sessions.TargetTTL == 0 {
		c.Sessions.TargetTTL = DefaultTargetTTL
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	v := validator{root: root}
	if len(c.VirtualProxies) == 0 {
		v.fail("virtual_proxies", "name at least one virtual proxy, e.g. {prefix: \"\", backends: [\"http://127.0.0.1:9000\"]}")
	}
	v.operations(c)
	v.listen("frontend.listen", c.Frontend.Listen)
	v.listen("api.listen", c.API.Listen)
	if c.Frontend.HTTPListen != "" {
		v.listen("frontend.http_listen", c.Frontend.HTTPListen)
	}
	v.optionalURL("frontend.public_url", c.Frontend.PublicURL)
	v.optionalURL("api.public_url", c.API.PublicURL)
	if c.Frontend.ShutdownTimeout < 0 {
		v.fail("frontend.shutdown_timeout", "must be positive, e.g. 30s")
	}
	if c.API.MaxBodyBytes < 0 {
		v.fail("api.max_body_bytes", "must be positive")
	}
	tlsSet := 0
	for _, f := range []string{c.TLS.CA, c.TLS.Cert, c.TLS.Key} {
		if f != "" {
			tlsSet++
		}
	}
	if tlsSet != 0 && tlsSet != 3 {
		v.fail("tls", "set all of ca, cert and key, or none (openqps then generates them)")
	}
	switch c.Store.Type {
	case "memory", "embedded":
	case "redis":
		if len(c.Store.Redis.Addresses) == 0 {
			v.fail("store.redis.addresses", "needs at least one host:port when store.type is redis")
		}
	default:
		v.fail("store.type", fmt.Sprintf("%q is not a store; use memory, embedded or redis", c.Store.Type))
	}
	if c.Store.MaxSessions < 0 {
		v.fail("store.max_sessions", "must be 0 (no cap) or more")
	}
	if c.Store.LastUseFlush < 0 {
		v.fail("store.last_use_flush", "must be positive, e.g. 5s")
	}
	if c.Sessions.MinIDLength < 1 {
		v.fail("sessions.min_id_length", "must be at least 1")
	}
	if c.Sessions.TicketTTL < 0 || c.Sessions.TargetTTL < 0 {
		v.fail("sessions", "ticket_ttl and target_ttl must be positive")
	}
	if c.Sessions.MaxPerUser < 0 {
		v.fail("sessions.max_per_user", "must be 0 (no cap) or more")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.fail("log.level", "use debug, info, warn or error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		v.fail("log.format", "use text or json")
	}

	prefixes := map[string]int{}
	cookies := map[string]int{}
	for i := range c.VirtualProxies {
		vp := &c.VirtualProxies[i]
		at := fmt.Sprintf("virtual_proxies[%d]", i)
		v.virtualProxy(at, vp, c.Demo)
		v.auth(at, vp)
		v.proxying(at, vp)
		if j, dup := prefixes[vp.Prefix]; dup {
			v.fail(at+".prefix", fmt.Sprintf("%q is already the prefix of virtual_proxies[%d]", vp.Prefix, j))
		}
		prefixes[vp.Prefix] = i
		if j, dup := cookies[vp.SessionCookieName]; dup {
			v.fail(at+".session_cookie_name", fmt.Sprintf("%q is already the cookie of virtual_proxies[%d]; each virtual proxy needs its own", vp.SessionCookieName, j))
		}
		cookies[vp.SessionCookieName] = i
	}
	return v.err()
}

// VirtualProxy returns the virtual proxy with the given prefix.
func (c *Config) VirtualProxy(prefix string) (*VirtualProxy, bool) {
	for i := range c.VirtualProxies {
		if c.VirtualProxies[i].Prefix == prefix {
			return &c.VirtualProxies[i], true
		}
	}
	return nil, false
}

// CookieName is the session cookie of a virtual proxy with the given
// prefix when the configuration names none: X-Qlik-Session for the
// default virtual proxy, X-Qlik-Session-<prefix> for the others.
func CookieName(prefix string) string {
	if prefix == "" {
		return "X-Qlik-Session"
	}
	return "X-Qlik-Session-" + prefix
}

func (v *validator) virtualProxy(at string, vp *VirtualProxy, demo bool) {
	vp.Prefix = strings.Trim(vp.Prefix, "/")
	if vp.Prefix != "" {
		switch {
		case !prefixPattern.MatchString(vp.Prefix):
			v.fail(at+".prefix", fmt.Sprintf("%q: use lower-case letters, digits and . _ ~ - only, one path segment", vp.Prefix))
		case ReservedPrefixes[vp.Prefix]:
			v.fail(at+".prefix", fmt.Sprintf("%q is reserved (it is a path of the trusted API or of the hub); choose another", vp.Prefix))
		}
	}
	if vp.SessionCookieName == "" {
		vp.SessionCookieName = CookieName(vp.Prefix)
	} else if !validCookieName(vp.SessionCookieName) {
		v.fail(at+".session_cookie_name", fmt.Sprintf("%q is not a valid cookie name", vp.SessionCookieName))
	}
	if vp.SessionInactivityTimeout == 0 {
		vp.SessionInactivityTimeout = DefaultTimeout
	} else if vp.SessionInactivityTimeout < time.Second {
		v.fail(at+".session_inactivity_timeout", "must be at least 1s (e.g. 30m)")
	}
	if u := vp.AuthenticationModuleRedirectURI; u != "" {
		// A path (starting with "/") is a login module served on the
		// front end itself, e.g. the demo's; it is resolved per request.
		p, err := url.Parse(u)
		if err != nil || (!strings.HasPrefix(u, "/") && (!p.IsAbs() || p.Host == "")) {
			v.fail(at+".authentication_module_redirect_uri", fmt.Sprintf("%q is not an absolute URL or a path starting with /", u))
		}
	}
	if len(vp.Backends) == 0 && !demo {
		v.fail(at+".backends", "name at least one back end, e.g. [\"http://127.0.0.1:9000\"]")
	}
	vp.BackendURLs = vp.BackendURLs[:0]
	for j, b := range vp.Backends {
		p, err := url.Parse(b)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			v.fail(fmt.Sprintf("%s.backends[%d]", at, j), fmt.Sprintf("%q is not an http(s) URL", b))
			continue
		}
		vp.BackendURLs = append(vp.BackendURLs, p)
	}
}

func validCookieName(name string) bool {
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return name != ""
}

// validator collects every problem, so one run shows them all.
type validator struct {
	root *yaml.Node
	errs []error
}

func (v *validator) fail(key, msg string) {
	if line := lineOf(v.root, key); line > 0 {
		v.errs = append(v.errs, fmt.Errorf("line %d: %s: %s", line, key, msg))
		return
	}
	v.errs = append(v.errs, fmt.Errorf("%s: %s", key, msg))
}

func (v *validator) err() error { return errors.Join(v.errs...) }

func (v *validator) listen(key, addr string) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		v.fail(key, fmt.Sprintf("%q is not host:port (e.g. \":8443\")", addr))
	}
}

func (v *validator) optionalURL(key, u string) {
	if u == "" {
		return
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		v.fail(key, fmt.Sprintf("%q is not an absolute http(s) URL", u))
	}
}

// lineOf finds the line of a dotted key such as "virtual_proxies[1].prefix"
// in the parsed document; 0 when it is not there (a default was used).
func lineOf(root *yaml.Node, key string) int {
	if root == nil || len(root.Content) == 0 {
		return 0
	}
	n := root.Content[0]
	line := 0
	for _, part := range strings.Split(key, ".") {
		name, index := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			name = part[:i]
			fmt.Sscanf(part[i:], "[%d]", &index)
		}
		key, next := mappingEntry(n, name)
		if next == nil {
			return line
		}
		line = key.Line
		n = next
		if index >= 0 {
			if n.Kind != yaml.SequenceNode || index >= len(n.Content) {
				return line
			}
			n = n.Content[index]
			line = n.Line
		}
	}
	return line
}

// mappingEntry returns the key and value nodes of key in a mapping.
func mappingEntry(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}
