// Package freeport tells whether a loopback port is free for a gateway
// about to start, for the tests and benchmarks that start gateways as
// processes: a tunnel listener takes its port on both TCP and UDP.
package freeport

import "net"

// Loopback returns a loopback TCP address whose port the kernel picked
// as free just now; nothing is bound to it any more when it returns.
func Loopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Free reports whether addr can be bound now on TCP, and on UDP too when
// udp is set. It keeps nothing bound.
func Free(addr string, udp bool) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	if udp {
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		u.Close()
	}
	return true
}
