package tunneltest

import (
	"net"
	"sync/atomic"
)

// FirstDatagramOnly is the socket of a QUIC client that sends its first
// datagram only (a handshake that never completes, as a flood of spoofed
// Initials makes) and counts what comes back without handing it over.
// Sent and Got are the bytes of that datagram and of the answers.
type FirstDatagramOnly struct {
	net.PacketConn
	wrote     atomic.Bool
	Sent, Got atomic.Int64
}

func (c *FirstDatagramOnly) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.wrote.Swap(true) {
		return len(b), nil
	}
	c.Sent.Add(int64(len(b)))
	return c.PacketConn.WriteTo(b, addr)
}

func (c *FirstDatagramOnly) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, _, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return 0, nil, err
		}
		c.Got.Add(int64(n))
	}
}
