// Package copybuf gives the buffers that the reverse proxies of the
// gateway and the agent copy bodies with, reused across requests.
package copybuf

import "sync"

// Size is the size of a buffer, that of io.Copy's own.
const Size = 32 << 10

// Pool is an httputil.BufferPool of Size buffers. All its values share
// one pool: every proxy of a process reuses the same buffers.
type Pool struct{}

var buffers sync.Pool // of *[]byte, each of Size bytes

// Get returns a buffer of Size bytes.
func (Pool) Get() []byte {
	if p, ok := buffers.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, Size)
}

// Put gives b back for reuse; a buffer that Get did not return is
// dropped.
func (Pool) Put(b []byte) {
	if cap(b) != Size {
		return
	}
	b = b[:Size]
	buffers.Put(&b)
}
