package streamhttp

import (
	"log/slog"
	"net/http"
	"time"
)

// MaxConcurrentStreams bounds the streams a Server serves at once on one
// session, whatever the peer opens: a hostile or broken gateway cannot
// make the agent hold unbounded goroutines and buffers. Streams over it
// wait in the transport (QUIC stream credit, the yamux backlog).
const MaxConcurrentStreams = 1024

// The Server's limits (tunnel/spec.md, "Request streams").
const (
	readHeaderTimeout = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// NewServer returns the http.Server that serves h on the streams of a
// session: give it Listener(s, MaxConcurrentStreams). Its header read
// timeout, header size limit and idle timeout bound what a stalled or
// hostile peer holds; log receives the server's own errors at debug.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
