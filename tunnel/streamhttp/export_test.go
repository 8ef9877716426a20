package streamhttp

import (
	"bufio"
	"net"
)

// FirstIdle returns the first idle stream of c and its reader, for tests
// that watch a kept stream.
func FirstIdle(c *Client) (net.Conn, *bufio.Reader) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idle[0].st, c.idle[0].br
}
