package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"
)

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
