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

// CredentialForms returns every form in which SetCredentials puts the
// site's credential on the wire, and its parts that are secret on their
// own: the token, "Bearer <token>" for service accounts and bearer
// tokens; for basic also "<email>:<token>", its base64 and "Basic
// <base64>". A response that holds one of them reflects the credential.
// It returns nil without a token.
func CredentialForms(a config.Auth) []string {
	token := a.Token.Reveal()
	if token == "" {
		return nil
	}
	switch a.Type {
	case config.AuthBasic:
		raw := a.Email + ":" + token
		b64 := base64.StdEncoding.EncodeToString([]byte(raw))
		return []string{token, raw, b64, "Basic " + b64}
	default:
		return []string{token, "Bearer " + token}
	}
}
