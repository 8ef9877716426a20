// Package diag is `oxbroker check` and the gateway's remote check of a
// site: it tries the agent's way to the gateway (DNS, TCP or the HTTP
// proxy, TLS, QUIC, broker authentication) and to each site's Jira (Cloud
// ID, DNS, TCP or the site's proxy, TLS, credentials, permissions), and
// says for each problem what is wrong and how to fix it.
//
// Diagnostics reuse the code they diagnose: the check dials with the
// agent's tunnel dialer and tunnel.DialProxy, reads Cloud IDs and builds
// TLS configs as the agent does, sends its Jira calls through the site's
// proxy, and words failures from the one classification of
// internal/netfail, which the proxy maps to its error codes. The wording
// is exported (Target, Explain) so that the agent's log can say what the
// check says. The agent imports diag, so diag does not import the agent:
// what it needs of it comes in Options and SiteOptions.
//
// Files: report.go (the report, the run, the chain of steps), gateway.go
// and site.go (the steps), jira.go (the calls to Jira), net.go (DNS, TCP
// and proxy reading), tls.go (TLS reading), words.go (causes and fixes).
package diag
