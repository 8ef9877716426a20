// Package gateway is the OX side of the broker. It accepts agents' tunnel
// sessions (authenticating each by broker id and token), keeps a registry
// of live sessions, and serves the connector API: OX's Jira connector calls
// /b/{broker}/{site}/{path} as if it were Jira, and the gateway sends each
// call over one of the broker's sessions.
//
// Several gateways can serve the same brokers as replicas of one cluster
// (registry.type redis): each records its sessions in Redis (redis.go)
// and forwards a call for which it has no session to the internal
// listener of a replica that has one, signed with the cluster secret
// (cluster.go). With registry.type memory a gateway knows its own
// sessions only (registry.go).
//
// The gateway never sees a Jira credential: the agent adds it on its side.
// It never imports the proxy package; what it shares with the agent is the
// tunnel protocol and the error conventions of brokerhttp.
package gateway
