package config

// Auth configures how a virtual proxy authenticates browsers besides a
// session cookie. The zero value is QPS's default: ticket/session login
// through the authentication module.
type Auth struct {
	// AuthenticationMethod: ticket (default), header_static,
	// header_dynamic or jwt.
	AuthenticationMethod string `yaml:"authentication_method"`
	// HeaderName is the header carrying the user for header
	// authentication; only safe behind a trusted front that sets it.
	HeaderName string `yaml:"header_name"`
	// StaticUserDirectory is the directory of header_static users.
	StaticUserDirectory string `yaml:"static_user_directory"`
	// DynamicUserDirectory is the pattern of header_dynamic values,
	// e.g. `$ud\$id`.
	DynamicUserDirectory string `yaml:"dynamic_user_directory"`
	// AnonymousAccess: none (default), allow or always.
	AnonymousAccess string `yaml:"anonymous_access"`
	// JWT configures authentication_method jwt.
	JWT JWT `yaml:"jwt"`
}

// JWT configures JSON Web Token authentication.
type JWT struct {
	// PublicKey is a PEM file with the certificate or public key that
	// signs the tokens.
	PublicKey          string            `yaml:"public_key"`
	UserIDClaim        string            `yaml:"user_id_claim"`
	UserDirectoryClaim string            `yaml:"user_directory_claim"`
	AttributeClaims    map[string]string `yaml:"attribute_claims"`
	Audience           string            `yaml:"audience"`
}

// auth fills the defaults of a virtual proxy's authentication settings
// and validates them.
func (v *validator) auth(at string, vp *VirtualProxy) {
	if vp.Auth.AuthenticationMethod == "" {
		vp.Auth.AuthenticationMethod = "ticket"
	}
	if vp.Auth.AnonymousAccess == "" {
		vp.Auth.AnonymousAccess = "none"
	}
}
