package config

// Proxying configures how a virtual proxy forwards: load balancing, back
// end health, websockets, its session cookie and extra response headers.
type Proxying struct {
	// LoadBalancing: round_robin (default), least_requests or sticky.
	LoadBalancing string `yaml:"load_balancing"`
	// HostAllowList: hosts allowed as websocket Origin and as targetUri
	// hosts (QPS's websocketCrossOriginWhiteList).
	HostAllowList []string `yaml:"websocket_origin_allow_list"`
	// CSRFToken requires QPS's qlik-csrf-token on websocket upgrades.
	CSRFToken bool `yaml:"csrf_token"`
	// SessionCookieSameSite: unset (default), none, lax or strict.
	SessionCookieSameSite string `yaml:"session_cookie_same_site"`
	// AdditionalResponseHeaders are added to every response.
	AdditionalResponseHeaders map[string]string `yaml:"additional_response_headers"`
}

// proxying fills the defaults of a virtual proxy's proxying settings and
// validates them.
func (v *validator) proxying(at string, vp *VirtualProxy) {
	if vp.Proxying.LoadBalancing == "" {
		vp.Proxying.LoadBalancing = "round_robin"
	}
}
