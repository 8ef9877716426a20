// Package agent runs the customer side of the broker: it keeps
// gateway.connections tunnel sessions up, spread over the gateway's
// endpoints (every IP address of every configured gateway address,
// resolved again before each dial), each redialled with exponential
// backoff and full jitter, or quickly when the gateway is restarting;
// introduces itself with hello; and serves every stream the gateway opens
// with an http.Server whose handler routes the request, by its
// Ox-Broker-Site header, to that site's proxy.
//
// The agent holds the Jira credentials; nothing it sends to the gateway
// contains them.
package agent
