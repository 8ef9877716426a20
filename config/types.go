package config

import (
	"log/slog"
	"time"
)

// Secret holds a credential read from the config (a broker token, a Jira
// token). It never prints itself: String, GoString, LogValue and the
// marshalers all return "REDACTED". Call Reveal at the one place that must
// put the value on the wire.
type Secret string

// Redacted is what a Secret prints instead of its value.
const Redacted = "REDACTED"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether no secret is set.
func (s Secret) IsZero() bool { return s == "" }

func (s Secret) String() string               { return Redacted }
func (s Secret) GoString() string             { return Redacted }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(Redacted) }
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

var _ slog.LogValuer = Secret("")

// Agent is the configuration of the agent, oxbroker.
type Agent struct {
	Broker   Broker      `mapstructure:"broker"`
	StateDir string      `mapstructure:"state_dir"`
	Gateway  GatewayDial `mapstructure:"gateway"`
	Sites    []Site      `mapstructure:"sites"`
	Admin    Admin       `mapstructure:"admin"`
	Log      Log         `mapstructure:"log"`

	// warnings are what loading found worth fixing but not fatal.
	warnings Errors
}

// Warnings returns the problems loading found that do not stop the agent
// (a token file other users may read), one "key.path: message" each.
func (a *Agent) Warnings() Errors { return a.warnings }

// Broker identifies the agent to the gateway.
type Broker struct {
	ID string `mapstructure:"id"`
	// Token is the broker token; after loading it holds the content of
	// TokenFile when that is set (surrounding white space trimmed).
	Token     Secret `mapstructure:"token"`
	TokenFile string `mapstructure:"token_file"`
}

// Transports accepted in GatewayDial.Transport.
const (
	TransportAuto = "auto"
	TransportQUIC = "quic"
	TransportTCP  = "tcp"
)

// GatewayDial says how the agent reaches the gateway.
type GatewayDial struct {
	Address     string   `mapstructure:"address"`
	Addresses   []string `mapstructure:"addresses"`
	Transport   string   `mapstructure:"transport"`
	Connections int      `mapstructure:"connections"`
	CAFile      string   `mapstructure:"ca_file"`
	ServerName  string   `mapstructure:"server_name"`
	// Proxy is an http:// CONNECT proxy URL, possibly with user:pass.
	// Empty means HTTPS_PROXY/https_proxy (honouring NO_PROXY), resolved by the
	// agent for the address it dials. A proxy forces the tcp transport.
	Proxy string `mapstructure:"proxy"`
}

// Auth types accepted in Auth.Type.
const (
	AuthServiceAccount = "service_account"
	AuthBasic          = "basic"
	AuthBearer         = "bearer"
)

// Site is one Jira installation the agent proxies to.
type Site struct {
	Name string `mapstructure:"name"`
	Type string `mapstructure:"type"`
	// URL is the Jira base URL, e.g.
	// https://api.atlassian.com/ex/jira/<cloudId> or https://jira.acme.local.
	// Exactly one of URL and CloudSite is set.
	URL string `mapstructure:"url"`
	// CloudSite is "acme", "acme.atlassian.net" or "https://acme.atlassian.net";
	// the Cloud ID is discovered at start and the upstream becomes
	// AtlassianAPI + "/ex/jira/" + cloudId.
	CloudSite    string        `mapstructure:"cloud_site"`
	AtlassianAPI string        `mapstructure:"atlassian_api"`
	Auth         Auth          `mapstructure:"auth"`
	TLS          SiteTLS       `mapstructure:"tls"`
	Proxy        string        `mapstructure:"proxy"`
	Allow        Allow         `mapstructure:"allow"`
	Timeout      time.Duration `mapstructure:"timeout"`
	// MaxConcurrent bounds in-flight upstream requests for this site.
	MaxConcurrent int `mapstructure:"max_concurrent"`
	// MaxBody is the request body limit in bytes ("50MiB" in YAML).
	MaxBody ByteSize `mapstructure:"max_body"`
	// RewriteLinks turns on the rewriting of Jira's links to the site's
	// REST API into links through the gateway (default true).
	RewriteLinks bool `mapstructure:"rewrite_links"`
}

// Auth holds the Jira credentials of a site.
type Auth struct {
	Type      string `mapstructure:"type"`
	Token     Secret `mapstructure:"token"`
	TokenFile string `mapstructure:"token_file"`
	Email     string `mapstructure:"email"`
	// Expires is the token's expiry date (YYYY-MM-DD); zero when unset.
	Expires Date `mapstructure:"expires"`
}

// SiteTLS is the TLS policy toward Jira.
type SiteTLS struct {
	CAFile             string `mapstructure:"ca_file"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// Allow narrows what the agent forwards to a site.
type Allow struct {
	Scopes     []string    `mapstructure:"scopes"`
	Operations []string    `mapstructure:"operations"`
	Deny       []string    `mapstructure:"deny"`
	Rules      []AllowRule `mapstructure:"rules"`
	// Headers are request header names forwarded to the site in addition
	// to those every site forwards (docs/design.md); CheckForwardHeader
	// says which names may be added.
	Headers []string `mapstructure:"headers"`
}

// AllowRule allows extra method + path templates.
type AllowRule struct {
	Methods []string `mapstructure:"methods"`
	Path    string   `mapstructure:"path"`
}

// Admin is the agent's admin listener: /healthz /readyz /metrics, and
// the status page and its API (AdminPage).
type Admin struct {
	Listen string `mapstructure:"listen"`
	// Page, Hosts and Auth are AdminPage's.
	Page  bool      `mapstructure:"page"`
	Hosts []string  `mapstructure:"hosts"`
	Auth  AdminAuth `mapstructure:"auth"`
}

// PageAccess is who may see the agent's status page.
func (a Admin) PageAccess() AdminPage { return AdminPage{Page: a.Page, Hosts: a.Hosts, Auth: a.Auth} }

// AdminPage is who may see the status page and its API on an admin
// listener (the agent's admin:, the gateway's admin:). /healthz, /readyz
// and /metrics are not part of it: they answer anyone, as before.
type AdminPage struct {
	// Page serves the status page and its API at / (default true); false
	// leaves only /healthz, /readyz and /metrics on the listener.
	Page bool `mapstructure:"page"`
	// Hosts are more host names under which the page may be reached
	// (behind a reverse proxy, or a DNS name of the machine): a request
	// whose Host is none of these, the listen address's host or a
	// loopback name is refused (DNS rebinding).
	Hosts []string `mapstructure:"hosts"`
	// Auth is required when the listener is not on a loopback address.
	Auth AdminAuth `mapstructure:"auth"`
}

// Admin auth types accepted in AdminAuth.Type.
const (
	AdminAuthNone   = ""
	AdminAuthBearer = "bearer"
	AdminAuthBasic  = "basic"
)

// AdminAuth is how callers of the status page and its API authenticate:
// bearer, a token (a browser sends it as the password of Basic, with any
// user name); or basic, a user name and a bcrypt hash of the password.
type AdminAuth struct {
	Type      string `mapstructure:"type"`
	Token     Secret `mapstructure:"token"`
	TokenFile string `mapstructure:"token_file"`
	Username  string `mapstructure:"username"`
	// PasswordHash is a bcrypt hash ($2a$, $2b$ or $2y$), such as
	// htpasswd -nbB makes.
	PasswordHash Secret `mapstructure:"password_hash"`
}

// Log configures logging.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Gateway is the configuration of oxbroker-gateway.
type Gateway struct {
	Listen GatewayListen `mapstructure:"listen"`
	TLS    GatewayTLS    `mapstructure:"tls"`
	// PublicURL is the URL under which connectors reach the API, such as
	// https://broker.ox.security; the agents rewrite Jira's links to it.
	// Empty means the scheme and host of each request.
	PublicURL string `mapstructure:"public_url"`
	// TrustedProxies are the addresses (CIDRs or IPs) of the reverse
	// proxies in front of the API whose X-Forwarded-Proto and
	// X-Forwarded-Host are believed when PublicURL is empty.
	TrustedProxies []string      `mapstructure:"trusted_proxies"`
	Brokers        []BrokerEntry `mapstructure:"brokers"`
	Registry       Registry      `mapstructure:"registry"`
	Cluster        Cluster       `mapstructure:"cluster"`
	Limits         Limits        `mapstructure:"limits"`
	// Admin is who may see the status page on listen.admin.
	Admin AdminPage `mapstructure:"admin"`
	Log   Log       `mapstructure:"log"`
}

// GatewayListen holds the gateway's listen addresses.
type GatewayListen struct {
	Tunnel   string `mapstructure:"tunnel"`
	API      string `mapstructure:"api"`
	Admin    string `mapstructure:"admin"`
	Internal string `mapstructure:"internal"`
}

// GatewayTLS is the gateway's certificate.
type GatewayTLS struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	APITLS   bool   `mapstructure:"api_tls"`
}

// BrokerEntry is one broker the gateway accepts. Tokens are stored only
// as "sha256:<64 hex>" hashes.
type BrokerEntry struct {
	ID              string   `mapstructure:"id"`
	Token           string   `mapstructure:"token"`
	ConnectorTokens []string `mapstructure:"connector_tokens"`
}

// Registry selects where the gateway keeps its session registry.
type Registry struct {
	Type      string `mapstructure:"type"`
	URL       string `mapstructure:"url"`
	Advertise string `mapstructure:"advertise"`
}

// Cluster holds replica-to-replica settings.
type Cluster struct {
	SecretFile string `mapstructure:"secret_file"`
}

// Limits bound what agents may hold on the gateway, so that one that
// misbehaves (or a stranger, before it has said who it is) cannot take
// the memory and the log that every other agent shares. A zero field
// means its default (Load fills the defaults in; a Gateway built in Go
// may leave them out): read them with the methods.
type Limits struct {
	// UnauthenticatedSessions bounds the tunnel sessions, of every broker,
	// whose hello has not yet been accepted; beyond it a new session is
	// closed at once.
	UnauthenticatedSessions int `mapstructure:"unauthenticated_sessions"`
	// SessionsPerBroker bounds one broker's sessions on this gateway
	// process; beyond it a new session gets reject over_limit.
	SessionsPerBroker int `mapstructure:"sessions_per_broker"`
	// SitesPerBroker bounds the sites one hello or sites message may
	// announce; beyond it the hello gets reject over_limit and a sites
	// message is refused whole.
	SitesPerBroker int `mapstructure:"sites_per_broker"`
}

// ByteSize is a size in bytes, written in YAML as a number or with a unit
// ("50MiB", "512KiB", "1GB").
type ByteSize int64

// Date is a calendar day, written in YAML as YYYY-MM-DD.
type Date struct{ time.Time }
