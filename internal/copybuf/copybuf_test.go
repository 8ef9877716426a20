package copybuf

import (
	"net/http/httputil"
	"testing"
)

var _ httputil.BufferPool = Pool{}

func TestPoolGivesFullBuffers(t *testing.T) {
	var p Pool
	b := p.Get()
	if len(b) != Size || cap(b) != Size {
		t.Fatalf("got a buffer of len %d, cap %d; want %d", len(b), cap(b), Size)
	}
	// A buffer given back short is whole again when it comes back out.
	p.Put(b[:10])
	for range 100 {
		if b := p.Get(); len(b) != Size {
			t.Fatalf("got a buffer of len %d after Put; want %d", len(b), Size)
		}
	}
	// One of another size is not kept.
	p.Put(make([]byte, 100))
	for range 100 {
		if b := p.Get(); len(b) != Size {
			t.Fatalf("got a buffer of len %d after a foreign Put; want %d", len(b), Size)
		}
	}
}
