// Package config reads openqps's YAML configuration, fills in defaults and
// validates it once, up front, so the request path can trust every value.
// Errors name the offending key and its line in the file.
//
// Each section lives in the file named after it (listeners.go, store.go,
// logging.go, metrics.go, timeouts.go, transport.go, virtualproxy.go, with a virtual
// proxy's login settings in auth.go and its forwarding in
// forwarding.go) and has two steps, as Caddy's Provision and Validate:
// a method that fills its defaults, then one that checks it. finish runs
// them, section by section.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

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
	Transport      Transport      `yaml:"transport"`
	Admin          Admin          `yaml:"admin"`
	VirtualProxies []VirtualProxy `yaml:"virtual_proxies"`
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

// DefaultDataDir holds the certificates and the session store when
// data_dir is not set.
const DefaultDataDir = "openqps-data"

// finish fills defaults and validates, section by section: every
// default first, so that checks may compare sections (the metrics
// listener with the others). root, when not nil, is the parsed document,
// used to put line numbers on errors.
func (c *Config) finish(root *yaml.Node) error {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	c.Frontend.setDefaults()
	c.API.setDefaults()
	c.Store.setDefaults()
	c.Sessions.setDefaults()
	c.Log.setDefaults()
	c.Timeouts.setDefaults()
	c.Transport.setDefaults()
	c.Admin.setDefaults()

	v := validator{root: root}
	v.frontend(&c.Frontend)
	v.api(&c.API)
	v.tls(&c.TLS)
	v.store(&c.Store)
	v.sessions(&c.Sessions)
	v.log(&c.Log)
	v.timeouts(&c.Timeouts)
	v.transport(&c.Transport)
	v.metrics(c)
	v.virtualProxies(c.VirtualProxies)
	v.admin(c)
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
