// Package jira holds what the broker knows about Jira: its authentication
// schemes, Cloud ID discovery, and (in jiratest) a stand-in for tests and
// the demo. It knows nothing of tunnels or sockets.
package jira

import (
	"encoding/base64"
	"net/http"

	"github.com/oxsecurity/oxbroker/config"
)

// SetCredentials sets the Authorization header of an outgoing Jira request
// for the site's auth scheme: Bearer for service accounts (through
// api.atlassian.com/ex/jira/<cloudId>) and Data Center personal access
// tokens, Basic email:token for personal API tokens on *.atlassian.net.
// It is the only place a Jira token is put on the wire.
func SetCredentials(h http.Header, a config.Auth) {
	switch a.Type {
	case config.AuthBasic:
		raw := a.Email + ":" + a.Token.Reveal()
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(raw)))
	case config.AuthServiceAccount, config.AuthBearer:
		h.Set("Authorization", "Bearer "+a.Token.Reveal())
	}
}
