package tunneltest

import (
	"net"
	"testing"
)

// ClosedAddr returns a loopback TCP address nothing listens on: a port
// that was free a moment ago. Connecting to it is refused.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
