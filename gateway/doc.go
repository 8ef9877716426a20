// Package gateway is the OX side of the broker. It accepts agents' tunnel
// sessions (authenticating each by broker id and token), keeps a registry
// of live sessions, and serves the connector API: OX's Jira connector calls
// /b/{broker}/{site}/{path} as if it were Jira, and the gateway sends each
// call over one of the broker's sessions.
//
// The gateway never sees a Jira credential: the agent adds it on its side.
// It never imports the proxy package; what it shares with the agent is the
// tunnel protocol and the error conventions of brokerhttp.
package gateway
