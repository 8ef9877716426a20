package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/oxsecurity/oxbroker/internal/testwait"
)

// recordingConn records the size and start of every write to it.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte // the first 12 bytes of each write
	sizes  []int
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(b[:min(len(b), headerSize)]))
	c.sizes = append(c.sizes, len(b))
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// TestMuxConnJoinsHeaderAndBody checks that every yamux data frame
// leaves in one write with its body (the first 16 KiB of it when larger),
// and that bytes of every size arrive intact.
func TestMuxConnJoinsHeaderAndBody(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingConn{Conn: raw}
	client, err := newYamux(rec, true, Options{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := newYamux(<-accepted, false, Options{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		for {
			st, err := server.AcceptStream(ctx)
			if err != nil {
				return
			}
			go func() { defer st.Close(); io.Copy(st, st) }()
		}
	}()
	for _, size := range []int{1, headerSize, 100, coalesceMax - headerSize, coalesceMax, 1 << 20} {
		st, err := client.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, size)
		rand.Read(want)
		go func() { st.Write(want); CloseWrite(st) }()
		got, err := io.ReadAll(st)
		st.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: got %d back (%v)", size, len(got), err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	joined := 0
	for i, w := range rec.writes {
		if len(w) < headerSize || w[0] != muxVersion || w[1] != typeData {
			continue
		}
		n := int(binary.BigEndian.Uint32(w[lengthOffset:]))
		switch {
		case n > 0 && rec.sizes[i] == headerSize:
			t.Errorf("write %d: a data header for %d bytes went out alone", i, n)
		case n > 0:
			joined++
			if want := headerSize + min(n, coalesceMax-headerSize); rec.sizes[i] != want {
				t.Errorf("write %d: %d bytes, want header and %d of body", i, rec.sizes[i], want-headerSize)
			}
		}
	}
	if joined == 0 {
		t.Error("no data frame seen")
	}
}

// TestClosedSessionLetsGoOfTLS checks that a TCP session that died while
// one of its streams was half-closed does not keep its TLS connection
// (and its buffers) reachable while yamux's close timer runs.
func TestClosedSessionLetsGoOfTLS(t *testing.T) {
	p := newPKI(t)
	l := listen(t, p, Options{}.withDefaults())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tlsConn := func() weak.Pointer[tls.Conn] {
		d := &Dialer{Transport: DialTCP, TLS: p.client, Options: Options{}.withDefaults()}
		client, err := d.Dial(ctx, l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := server.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte("x"))
		cst, err := client.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cst.Close() // half-closed: arms yamux's close timer
		wp := weak.Make(client.(*yamuxSession).conn.(*tls.Conn))
		server.Close()
		select {
		case <-client.Done():
		case <-ctx.Done():
			t.Fatal("the client session did not end with the server's")
		}
		client.Close()
		return wp
	}()
	if _, ok := testwait.Until(time.Second, func() bool { runtime.GC(); return tlsConn.Value() == nil }); !ok {
		t.Fatalf("the TLS connection of a closed session is still reachable (yamux's close timer is %s)", streamCloseTimeout)
	}
}
