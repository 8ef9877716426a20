package freeport

import (
	"net"
	"testing"
)

func TestFree(t *testing.T) {
	addr, err := Loopback()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the address Loopback gave: %v", err)
	}
	if Free(addr, false) {
		t.Errorf("Free(%s) with a TCP listener on it: got true", addr)
	}
	l.Close()
	// Free keeps nothing bound: the same address twice.
	if !Free(addr, false) || !Free(addr, false) {
		t.Errorf("Free(%s) twice after the listener closed: want true both times", addr)
	}

	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if a := u.LocalAddr().String(); Free(a, true) {
		t.Errorf("Free(%s, udp) with a UDP socket on it: got true", a)
	}
	u.Close()
	// A port the kernel picks for TCP is usually free on UDP too.
	for range 20 {
		if addr, err = Loopback(); err != nil {
			t.Fatal(err)
		}
		if Free(addr, true) && Free(addr, true) {
			return
		}
	}
	t.Error("Free(addr, udp) was never true twice in a row for 20 ports")
}

func TestListenTCPUDP(t *testing.T) {
	tl, ul, err := ListenTCPUDP()
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	defer ul.Close()
	if tp, up := tl.Addr().(*net.TCPAddr).Port, ul.LocalAddr().(*net.UDPAddr).Port; tp != up {
		t.Errorf("TCP on %d, UDP on %d: want one port", tp, up)
	}
	if Free(tl.Addr().String(), true) {
		t.Errorf("%s is reported free while both listeners hold it", tl.Addr())
	}
}
