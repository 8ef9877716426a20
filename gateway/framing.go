package gateway

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// Request smuggling guard for the connector API.
//
// net/http accepts a request that carries both Content-Length and
// Transfer-Encoding: chunked, silently drops Content-Length, reads the body
// as chunked and keeps the connection open. Behind a front proxy that
// frames by Content-Length, the bytes after the chunked body become a
// request the proxy never saw (RFC 9112 §6.1 says such a request must be
// refused or the connection closed). By the time a handler runs the
// Content-Length header is gone, so framingListener scans each request's
// header block on the wire before net/http parses it and tells the handler
// what it saw.
//
// The scanner follows the framing net/http uses: a header block, then
// Content-Length bytes of body. It stops at the first header block with
// Transfer-Encoding, because such a request is always answered with
// Connection: close (checkFraming), so nothing after it is ever served.
// Whenever the scanner and net/http could disagree (a line it cannot
// parse, a body length it cannot follow) it gives up, and a request with
// Transfer-Encoding on that connection is refused: the guard fails closed.

// framingListener wraps the API listener's connections in framingConns.
type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c}, nil
}

// framingState is what the scanner knows about a connection.
type framingState uint8

const (
	scanning framingState = iota // no header block with Transfer-Encoding yet
	teOnly                       // a header block had Transfer-Encoding and no Content-Length
	teWithCL                     // a header block had both
	scanLost                     // the scanner cannot follow the framing any more
)

// Header lines longer than this are not needed to find the two names; a
// longer Content-Length line is not one net/http would accept anyway.
const maxScanLine = 256

// framingConn scans the bytes net/http reads from the connection.
type framingConn struct {
	net.Conn

	mu    sync.Mutex // guards what follows; Read and the handler run in different goroutines
	state framingState

	// The header block being scanned.
	inBody  int64  // body bytes still to skip before the next header block
	line    []byte // the start of the current line, up to maxScanLine bytes
	long    bool   // the current line is longer than maxScanLine
	lineNo  int    // lines of this header block so far (0: request line or leading CRLFs)
	hasCL   bool
	hasTE   bool
	clValue int64
	lastCL  bool // the previous header line was Content-Length, for obs-fold continuations
}

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.scan(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

// scan advances the scanner over b.
func (c *framingConn) scan(b []byte) {
	for len(b) > 0 && c.state == scanning {
		if c.inBody > 0 {
			k := min(c.inBody, int64(len(b)))
			c.inBody -= k
			b = b[k:]
			continue
		}
		i := bytes.IndexByte(b, '\n')
		part := b
		if i >= 0 {
			part = b[:i]
		}
		if room := maxScanLine - len(c.line); len(part) > room {
			// Keep the start, where the name is.
			c.line = append(c.line, part[:room]...)
			c.long = true
		} else {
			c.line = append(c.line, part...)
		}
		if i < 0 {
			return
		}
		b = b[i+1:]
		c.endLine()
	}
}

// endLine handles one complete line of a header block.
func (c *framingConn) endLine() {
	line := bytes.TrimSuffix(c.line, []byte("\r"))
	long := c.long
	c.line, c.long = c.line[:0], false
	if c.lineNo == 0 {
		if len(line) == 0 && !long {
			return // net/http skips CRLFs before a request line
		}
		c.lineNo++
		return // the request line
	}
	if len(line) == 0 && !long { // end of the header block
		c.endBlock()
		return
	}
	c.lineNo++
	if line[0] == ' ' || line[0] == '\t' {
		// obs-fold: more of the previous header's value. A folded
		// Content-Length is a length the scanner cannot be sure of.
		if c.lastCL {
			c.state = scanLost
		}
		return
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		// Either a name longer than maxScanLine, which is not one of the
		// two, or a line net/http refuses (and closes the connection).
		c.lastCL = false
		return
	}
	name := bytes.TrimRight(line[:colon], " \t")
	c.lastCL = bytes.EqualFold(name, []byte("Content-Length"))
	switch {
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		c.hasTE = true
	case c.lastCL:
		v, err := strconv.ParseInt(string(bytes.Trim(line[colon+1:], " \t")), 10, 64)
		if long || err != nil || v < 0 || (c.hasCL && v != c.clValue) {
			c.state = scanLost // net/http refuses these too and closes
			return
		}
		c.hasCL, c.clValue = true, v
	}
}

// endBlock ends a header block: decide the connection's state, or skip the
// body and scan the next block.
func (c *framingConn) endBlock() {
	switch {
	case c.hasTE && c.hasCL:
		c.state = teWithCL
	case c.hasTE:
		c.state = teOnly
	case c.hasCL:
		c.inBody = c.clValue
	}
	c.lineNo, c.hasCL, c.hasTE, c.clValue, c.lastCL = 0, false, false, 0, false
}

func (c *framingConn) framing() framingState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

type connKey struct{}

// withConn is the API server's ConnContext: it lets handlers reach the
// framingConn their request was read from.
func withConn(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, connKey{}, fc)
	}
	return ctx
}

// checkFraming returns why a request must be refused for its framing, or
// "". A request with Transfer-Encoding is always answered with
// Connection: close, whatever else happens to it.
func checkFraming(w http.ResponseWriter, r *http.Request) string {
	if len(r.TransferEncoding) == 0 {
		return ""
	}
	w.Header().Set("Connection", "close")
	// Without a framingConn (a server not on framingListener) the framing
	// cannot be verified either: refused, like a connection the scanner lost.
	state := scanLost
	if fc, _ := r.Context().Value(connKey{}).(*framingConn); fc != nil {
		state = fc.framing()
	}
	switch state {
	case teOnly:
		return ""
	case teWithCL:
		return "the request has both Content-Length and Transfer-Encoding; send one of them"
	default:
		return "the request's framing could not be verified; send Content-Length or Transfer-Encoding: chunked, not both"
	}
}
