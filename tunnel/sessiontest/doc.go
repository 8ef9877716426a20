// Package sessiontest holds test doubles that speak the tunnel protocol:
// connected session pairs on loopback, and the fake peers tests drive.
// (tunneltest holds the doubles of the network under it: a CONNECT proxy
// and a fault relay, which know nothing of the protocol.)
package sessiontest
