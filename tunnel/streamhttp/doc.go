// Package streamhttp carries HTTP/1.1 over the streams of a tunnel
// session, both halves of it: the gateway's Transport opens a stream of
// the session for each connection it would dial, and the agent's Server
// serves each stream the gateway opens as one connection (tunnel/spec.md,
// "Request streams"). Keep-alive works as on TCP: one stream may carry
// several exchanges in sequence.
package streamhttp
