package config

import (
	"slices"
	"strconv"
	"time"
)

// Registry types accepted in Registry.Type.
const (
	RegistryMemory = "memory"
	RegistryRedis  = "redis"
)

// Defaults that Load fills in for keys the file leaves out.
const (
	defaultConnections   = 2
	defaultAtlassianAPI  = "https://api.atlassian.com"
	defaultTimeout       = 60 * time.Second
	defaultMaxConcurrent = 32
	defaultMaxBody       = 50 << 20
	defaultAgentAdmin    = "127.0.0.1:9108"
	defaultTunnelListen  = ":8443"
	defaultAPIListen     = ":8080"
	defaultGatewayAdmin  = "127.0.0.1:9109"

	// Limits of the gateway: far above what honest agents use (a broker
	// has a few agents of 2 to 8 connections each, and a few sites), low
	// enough that one broker cannot take what the others share.
	defaultUnauthenticatedSessions = 256
	defaultSessionsPerBroker       = 64
	defaultSitesPerBroker          = 1024
)

// defaultScopes are the classic scopes a Jira service-account token is
// given; the allowlist is built from them unless a site sets its own.
var defaultScopes = []string{"read:jira-user", "read:jira-work", "write:jira-work"}

// DefaultAgentAdmin is the agent's admin.listen when the config sets
// none; `oxbroker service status` asks the agent there when it cannot
// read the config.
const DefaultAgentAdmin = defaultAgentAdmin

// DefaultAgentPath is where the agent looks for its config when no
// --config is given: /etc/oxbroker/config.yaml on Linux and other Unix
// systems, %ProgramData%\OXBroker\config.yaml on Windows and
// /Library/Application Support/OXBroker/config.yaml on macOS.
func DefaultAgentPath() string { return defaultAgentPath() }

// setDefaults fills in the keys the file and the overrides left out. It
// runs after decoding, not in Validate, and looks at whether a key was
// set rather than at zero values, so that `admin: {listen: ""}` keeps the
// admin listener off and an explicit `timeout: 0s` is reported, not
// replaced.
func (a *Agent) setDefaults(set map[string]bool) {
	unlessSet(set, "state_dir", &a.StateDir, defaultStateDir())
	unlessSet(set, "gateway.transport", &a.Gateway.Transport, TransportAuto)
	unlessSet(set, "gateway.connections", &a.Gateway.Connections, defaultConnections)
	for i := range a.Sites {
		s, p := &a.Sites[i], "sites["+strconv.Itoa(i)+"]."
		unlessSet(set, p+"type", &s.Type, "jira")
		unlessSet(set, p+"atlassian_api", &s.AtlassianAPI, defaultAtlassianAPI)
		unlessSet(set, p+"allow.scopes", &s.Allow.Scopes, slices.Clone(defaultScopes))
		unlessSet(set, p+"timeout", &s.Timeout, defaultTimeout)
		unlessSet(set, p+"max_concurrent", &s.MaxConcurrent, defaultMaxConcurrent)
		unlessSet(set, p+"max_body", &s.MaxBody, defaultMaxBody)
		unlessSet(set, p+"rewrite_links", &s.RewriteLinks, true)
	}
	unlessSet(set, "admin.listen", &a.Admin.Listen, defaultAgentAdmin)
	unlessSet(set, "admin.page", &a.Admin.Page, true)
	a.Log.setDefaults(set)
}

func (g *Gateway) setDefaults(set map[string]bool) {
	unlessSet(set, "listen.tunnel", &g.Listen.Tunnel, defaultTunnelListen)
	unlessSet(set, "listen.api", &g.Listen.API, defaultAPIListen)
	unlessSet(set, "listen.admin", &g.Listen.Admin, defaultGatewayAdmin)
	unlessSet(set, "admin.page", &g.Admin.Page, true)
	unlessSet(set, "registry.type", &g.Registry.Type, RegistryMemory)
	unlessSet(set, "limits.unauthenticated_sessions", &g.Limits.UnauthenticatedSessions, defaultUnauthenticatedSessions)
	unlessSet(set, "limits.sessions_per_broker", &g.Limits.SessionsPerBroker, defaultSessionsPerBroker)
	unlessSet(set, "limits.sites_per_broker", &g.Limits.SitesPerBroker, defaultSitesPerBroker)
	g.Log.setDefaults(set)
}

func (l *Log) setDefaults(set map[string]bool) {
	unlessSet(set, "log.level", &l.Level, "info")
	unlessSet(set, "log.format", &l.Format, "text")
}

// unlessSet sets *field to value when the file and the overrides left
// key out.
func unlessSet[T any](set map[string]bool, key string, field *T, value T) {
	if !set[key] {
		*field = value
	}
}

// Unauthenticated is UnauthenticatedSessions, or its default.
func (l Limits) Unauthenticated() int {
	return orDefault(l.UnauthenticatedSessions, defaultUnauthenticatedSessions)
}

// Sessions is SessionsPerBroker, or its default.
func (l Limits) Sessions() int { return orDefault(l.SessionsPerBroker, defaultSessionsPerBroker) }

// Sites is SitesPerBroker, or its default.
func (l Limits) Sites() int { return orDefault(l.SitesPerBroker, defaultSitesPerBroker) }

func orDefault(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// DefaultScopes returns the allow.scopes a site gets when it names none:
// the classic scopes the OX service account is given.
func DefaultScopes() []string { return append([]string(nil), defaultScopes...) }
