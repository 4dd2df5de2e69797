package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	krb5config "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/types"
)

// AuthWindows is authentication_method windows: Kerberos through SPNEGO
// (Authorization: Negotiate), QPS's default login on a Windows domain.
const AuthWindows = "windows"

// Windows configures authentication_method windows.
type Windows struct {
	// Keytab is the keytab file holding the service principal's keys
	// (ktpass on Active Directory, kadmin ktadd on MIT).
	Keytab string `yaml:"keytab"`
	// ServicePrincipal is the principal browsers ask tickets for,
	// HTTP/<host name users type>@REALM. Tickets for any other principal
	// are refused, whatever else the keytab holds.
	ServicePrincipal string `yaml:"service_principal"`
	// Krb5Conf is a krb5.conf naming the KDCs of the realms; the forms
	// login checks passwords against them. Empty: no forms login, every
	// browser gets the Negotiate challenge.
	Krb5Conf string `yaml:"krb5_conf"`
	// RealmDirectories maps the Kerberos realms whose users may log in to
	// the QPS user directory they get (ACME.LOCAL: ACME, as QPS shows
	// ACME\user). Users of realms not listed are refused. Default: the
	// service principal's realm, mapped to its first label.
	RealmDirectories map[string]string `yaml:"realm_directories"`
	// DevicePattern is QPS's windowsAuthenticationEnabledDevicePattern:
	// browsers whose User-Agent contains it (case-insensitively) get the
	// Negotiate challenge, the others the forms login. "*" matches every
	// user agent. Default "Windows".
	DevicePattern string `yaml:"device_pattern"`
	// MaxClockSkew is how far a client's clock may be from openqps's
	// (default DefaultKerberosClockSkew, Kerberos's usual five minutes).
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
	// FormsLoginAttempts is how many forms login attempts one client
	// address may make per FormsLoginWindow (default 5 per minute): a
	// password check that answers at the KDC's speed would otherwise be a
	// password-guessing oracle.
	FormsLoginAttempts int           `yaml:"forms_login_attempts"`
	FormsLoginWindow   time.Duration `yaml:"forms_login_window"`

	// Keys is the loaded Keytab, Principal the parsed ServicePrincipal
	// (without realm), Realm its realm, KrbConfig the loaded Krb5Conf
	// (nil when not set): filled in by validation.
	Keys      *keytab.Keytab      `yaml:"-"`
	Principal types.PrincipalName `yaml:"-"`
	Realm     string              `yaml:"-"`
	KrbConfig *krb5config.Config  `yaml:"-"`
}

// Defaults of the windows settings.
const (
	DefaultKerberosClockSkew  = 5 * time.Minute
	DefaultDevicePattern      = "Windows"
	DefaultFormsLoginAttempts = 5
	DefaultFormsLoginWindow   = time.Minute
)

// windowsAuth fills the defaults of authentication_method windows and
// loads its keytab and krb5.conf, so that a bad file is a startup (or
// reload) error, not a failure on a user's first request.
func (v *validator) windowsAuth(at string, w *Windows) {
	at += ".windows"
	if w.DevicePattern == "" {
		w.DevicePattern = DefaultDevicePattern
	}
	if w.MaxClockSkew == 0 {
		w.MaxClockSkew = DefaultKerberosClockSkew
	} else if w.MaxClockSkew < 0 || w.MaxClockSkew > time.Hour {
		v.fail(at+".max_clock_skew", fmt.Sprintf("%s: allow between a second and an hour, e.g. max_clock_skew: 5m", w.MaxClockSkew))
	}
	if w.FormsLoginAttempts == 0 {
		w.FormsLoginAttempts = DefaultFormsLoginAttempts
	} else if w.FormsLoginAttempts < 0 {
		v.fail(at+".forms_login_attempts", "must be positive, e.g. forms_login_attempts: 5")
	}
	if w.FormsLoginWindow == 0 {
		w.FormsLoginWindow = DefaultFormsLoginWindow
	} else if w.FormsLoginWindow < time.Second {
		v.fail(at+".forms_login_window", "must be a second or more, e.g. forms_login_window: 1m")
	}
	name, realm, ok := strings.Cut(w.ServicePrincipal, "@")
	if !ok || !strings.Contains(name, "/") || realm == "" || strings.ContainsAny(realm, "@/ ") {
		v.fail(at+".service_principal", fmt.Sprintf("%q: name the principal browsers ask tickets for with its realm, e.g. service_principal: HTTP/qlik.acme.local@ACME.LOCAL", w.ServicePrincipal))
		return
	}
	w.Principal, w.Realm = types.NewPrincipalName(2, name), realm // 2: NT-SRV-INST
	if len(w.RealmDirectories) == 0 {
		w.RealmDirectories = map[string]string{realm: strings.SplitN(realm, ".", 2)[0]}
	}
	for r, dir := range w.RealmDirectories {
		if r == "" || strings.TrimSpace(dir) == "" || strings.ContainsRune(dir, '\\') {
			v.fail(at+".realm_directories", fmt.Sprintf("%q: %q: map a realm to a user directory (not blank, no backslash), e.g. {ACME.LOCAL: ACME}", r, dir))
		}
	}
	if w.Keytab == "" {
		v.fail(at+".keytab", "windows needs the keytab of "+w.ServicePrincipal+", e.g. keytab: /etc/openqps/http.keytab (ktpass on Active Directory, kadmin ktadd on MIT)")
	} else if kt, err := LoadKeytab(w.Keytab, w.Principal, realm); err != nil {
		v.fail(at+".keytab", err.Error())
	} else {
		w.Keys = kt
	}
	if w.Krb5Conf != "" {
		c, err := krb5config.Load(w.Krb5Conf)
		if err != nil {
			v.fail(at+".krb5_conf", fmt.Sprintf("read %s: %v", w.Krb5Conf, err))
			return
		}
		for r := range w.RealmDirectories {
			if _, kdcs, err := c.GetKDCs(r, true); err != nil || len(kdcs) == 0 {
				v.fail(at+".krb5_conf", fmt.Sprintf("%s names no KDC for realm %s (the forms login asks it for passwords): add it under [realms]", w.Krb5Conf, r))
			}
		}
		w.KrbConfig = c
	}
}

// LoadKeytab reads a keytab and checks that it holds a key of principal
// in realm.
func LoadKeytab(path string, principal types.PrincipalName, realm string) (*keytab.Keytab, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, errors.Unwrap(err))
	}
	kt := keytab.New()
	if err := kt.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("%s is not a keytab: %v", path, err)
	}
	var held []string
	for _, e := range kt.Entries {
		if e.Principal.Realm == realm && strings.Join(e.Principal.Components, "/") == principal.PrincipalNameString() {
			return kt, nil
		}
		held = append(held, strings.Join(e.Principal.Components, "/")+"@"+e.Principal.Realm)
	}
	return nil, fmt.Errorf("%s holds no key of %s@%s (it holds %v): export that principal's key into it", path, principal.PrincipalNameString(), realm, held)
}
