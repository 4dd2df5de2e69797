package console

import (
	"net/http"
	"net/url"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/metrics"
)

type vpRow struct {
	Name, Auth, LoginURI string
	Backends             []metrics.Backend
}

func (c *Console) proxies(k *call) {
	byVP := map[string][]metrics.Backend{}
	if c.opts.Backends != nil {
		for _, b := range c.opts.Backends() {
			byVP[b.VP] = append(byVP[b.VP], b)
		}
	}
	var rows []vpRow
	for _, v := range k.cfg.VirtualProxies {
		bs := byVP[v.Prefix]
		sort.Slice(bs, func(i, j int) bool { return bs[i].URL < bs[j].URL })
		rows = append(rows, vpRow{Name: vpName(v.Prefix), Auth: v.Auth.AuthenticationMethod, LoginURI: v.AuthenticationModuleRedirectURI, Backends: bs})
	}
	c.render(k, http.StatusOK, "proxies", "Virtual proxies", rows, "", false)
}

// config shows the configuration in force, secrets redacted.
func (c *Console) config(k *call, msg string, failed bool) {
	text, err := redactedYAML(k.cfg)
	if err != nil {
		text = "the configuration could not be shown: " + err.Error()
	}
	status := http.StatusOK
	if failed {
		status = http.StatusConflict
	}
	c.render(k, status, "config", "Configuration", text, msg, failed)
}

func (c *Console) reload(k *call) {
	if c.opts.Reload == nil {
		c.config(k, "This openqps has no configuration file to reload (the demo).", true)
		return
	}
	if err := c.opts.Reload(); err != nil {
		c.opts.Log.Warn("reload from the console rejected", "event", "console.reload_rejected", "admin", k.cr.Session.UserDirectory+`\`+k.cr.Session.UserID, "err", err)
		c.config(k, "Reload rejected: "+err.Error(), true)
		return
	}
	c.opts.Log.Info("reload from the console", "event", "console.reloaded", "admin", k.cr.Session.UserDirectory+`\`+k.cr.Session.UserID)
	k.cfg = c.opts.Config()
	c.config(k, "Reloaded: the configuration below is in force.", false)
}

// redactedYAML is the configuration as YAML with every secret replaced:
// values of keys that name a password, secret or key material, and the
// password in any URL.
func redactedYAML(cfg *config.Config) (string, error) {
	var n yaml.Node
	if err := n.Encode(cfg); err != nil {
		return "", err
	}
	redactNode(&n)
	b, err := yaml.Marshal(&n)
	return string(b), err
}

func redactNode(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			if val.Kind == yaml.ScalarNode && val.Value != "" && val.Tag == "!!str" && secretKey(key) {
				val.Value = "(redacted)"
				continue
			}
			redactNode(val)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "://") {
		if u, err := url.Parse(n.Value); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "redacted")
				n.Value = u.String()
			}
		}
	}
	for _, c := range n.Content {
		redactNode(c)
	}
}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "password") || strings.Contains(k, "secret") || strings.HasSuffix(k, "private_key") || k == "key_pem"
}
