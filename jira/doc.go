// Package jira holds what the broker knows about Jira: its authentication
// schemes, Cloud ID discovery, the allowlist of REST operations an agent
// forwards, and (in jiratest) a stand-in for tests and the demo. It knows
// nothing of tunnels or sockets.
package jira
