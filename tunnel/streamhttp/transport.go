package streamhttp

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// NewTransport returns an http.Transport whose connections are streams of
// s: each dial opens a stream, and idle streams are kept for reuse like
// idle TCP connections. Requests' URLs name any host; the session is the
// only destination. Bodies pass as they are (no compression is asked
// for), and the buffers are 32 KiB, as the agent's.
func NewTransport(s tunnel.Session) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return s.OpenStream(ctx)
		},
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     32 << 10,
		ReadBufferSize:      32 << 10,
	}
}
