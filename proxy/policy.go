package proxy

import "github.com/oxsecurity/oxbroker/jira"

// Policy decides which requests a Proxy forwards. The Proxy calls Match
// only for paths that passed CheckPath, with the decoded path (relative to
// the site's base URL, so "/rest/api/3/myself" whatever the base).
//
// Match returns the Jira operation the request is (for the audit log,
// which records templates, not raw paths that can carry user data), or an
// error whose message tells the caller what was refused and why; it must
// hold nothing secret. Match is called concurrently. *jira.Allowlist is
// the Policy of every site; tests may use others.
type Policy interface {
	Match(method, cleanPath string) (jira.Decision, error)
}

var _ Policy = (*jira.Allowlist)(nil)
