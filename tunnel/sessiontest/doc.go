// Package sessiontest holds test doubles that speak the tunnel protocol:
// connected session pairs on loopback (SessionPair), a fake gateway
// (Gateway: it answers hellos as the test says and hands each session to
// the test) and a fake agent (Agent: one session that serves the
// gateway's streams with an http.Handler). Both read their control
// stream with tunnel.ControlLoop, as the real sides do. Tests that play a
// rogue peer write their frames by hand instead: that is their point.
// (tunneltest holds the doubles of the network under it: a CONNECT proxy
// and a fault relay, which know nothing of the protocol, and the yamux
// header those rogue peers write.)
package sessiontest
