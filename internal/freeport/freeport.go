// Package freeport tells whether a loopback port is free for a gateway
// about to start, for the tests and benchmarks that start gateways as
// processes: a tunnel listener takes its port on both TCP and UDP. For a
// stand-in in the test's own process, ListenTCPUDP holds such a port.
package freeport

import (
	"errors"
	"net"
)

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

// ListenTCPUDP listens for TCP and UDP on one loopback port, as a
// gateway's tunnel listener does, for a test's stand-in of one (the fault
// relay, echo servers). A port the kernel gave for TCP may be taken for
// UDP, so it tries up to 20.
func ListenTCPUDP() (*net.TCPListener, *net.UDPConn, error) {
	for range 20 {
		tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, nil, err
		}
		ul, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tl.Addr().(*net.TCPAddr).Port})
		if err != nil {
			tl.Close()
			continue
		}
		return tl, ul, nil
	}
	return nil, nil, errors.New("no port free on both tcp and udp")
}
