// Package tunnel carries the broker's traffic between agent and gateway.
//
// It knows framing and sessions, not Jira or HTTP. A Session is one
// multiplexed connection, whatever its transport: QUIC (quic-go) or TLS over
// TCP with a yamux session on top, the latter optionally dialled through an
// HTTP CONNECT proxy. Both sides see streams as net.Conn values.
//
// The first stream of a session, opened by the agent, is the control stream:
// length-prefixed JSON messages (hello, welcome, reject, goaway, sites).
// Every other stream is opened by the gateway and carries HTTP/1.1. The wire
// format is written down in spec.md next to this file, with the limits each
// side holds its peer to (muxguard.go for yamux; the QUIC configuration and
// the listener's handshake caps for QUIC).
package tunnel

// ProtocolVersion is the version of the control protocol the agent puts in
// its hello. A gateway refuses a version it does not speak.
const ProtocolVersion = 1

// ALPN is the TLS application protocol on both transports.
const ALPN = "oxbroker/1"

// Transport names, as reported by Session.Transport and in metrics.
const (
	TransportQUIC = "quic"
	TransportTCP  = "tcp"
)

// Transports are both transports, in the order transport auto tries them;
// tests run each case over every one.
var Transports = []string{TransportQUIC, TransportTCP}
