package streamhttp_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/sessiontest"
	"github.com/oxsecurity/oxbroker/tunnel/streamhttp"
)

// served runs h on the streams the dialled side opens, as the agent does,
// and returns a Client of the dialled side and the number of streams the
// server has accepted so far.
func served(t *testing.T, tr string, h http.Handler, idle time.Duration) (*streamhttp.Client, *atomic.Int64) {
	t.Helper()
	agent, gw := sessiontest.SessionPair(t, tr, tunnel.Options{})
	srv := streamhttp.NewServer(h, slogDiscard())
	if idle > 0 {
		srv.IdleTimeout = idle
	}
	var streams atomic.Int64
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			streams.Add(1)
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(streamhttp.Listener(agent, streamhttp.MaxConcurrentStreams)) }()
	c := streamhttp.NewClient(gw)
	t.Cleanup(func() {
		c.CloseIdleConnections()
		srv.Close()
		<-done
	})
	return c, &streams
}

func get(t *testing.T, c *streamhttp.Client, ctx context.Context, method, path string) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, "http://agent"+path, nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// TestClientReusesStreams: GETs one after another take one stream; a HEAD
// and a 204 too; a POST with a body goes the full way and still works.
func TestClientReusesStreams(t *testing.T) {
	for _, tr := range tunnel.Transports {
		t.Run(tr, func(t *testing.T) {
			c, streams := served(t, tr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/empty":
					w.WriteHeader(http.StatusNoContent)
				case "/echo":
					b, _ := io.ReadAll(r.Body)
					w.Write(b)
				default:
					io.WriteString(w, strings.Repeat("x", 5000)+r.URL.Path)
				}
			}), 0)
			ctx := context.Background()
			for i := range 5 {
				resp, body, err := get(t, c, ctx, "GET", "/a")
				if err != nil || resp.StatusCode != 200 || body != strings.Repeat("x", 5000)+"/a" {
					t.Fatalf("GET %d: %v %v %d bytes", i, err, resp, len(body))
				}
			}
			if resp, body, err := get(t, c, ctx, "HEAD", "/a"); err != nil || resp.StatusCode != 200 || body != "" {
				t.Fatalf("HEAD: %v %v %q", err, resp, body)
			}
			if resp, _, err := get(t, c, ctx, "GET", "/empty"); err != nil || resp.StatusCode != 204 {
				t.Fatalf("204: %v %v", err, resp)
			}
			if n := streams.Load(); n != 1 {
				t.Errorf("GETs opened %d streams, want 1", n)
			}
			req, _ := http.NewRequest("POST", "http://agent/echo", strings.NewReader("body"))
			resp, err := c.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "body" {
				t.Errorf("POST: got %q", b)
			}
		})
	}
}

// TestClientRetriesStreamClosedWhileIdle: a stream the agent closed while
// it was idle is not the caller's failure: the GET goes out again on a
// new stream.
func TestClientRetriesStreamClosedWhileIdle(t *testing.T) {
	for _, tr := range tunnel.Transports {
		t.Run(tr, func(t *testing.T) {
			c, streams := served(t, tr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ok")
			}), 50*time.Millisecond)
			if _, body, err := get(t, c, context.Background(), "GET", "/"); err != nil || body != "ok" {
				t.Fatalf("first GET: %v %q", err, body)
			}
			// Wait until the server has closed the idle stream: a read of
			// the kept stream ends.
			st, br := streamhttp.FirstIdle(c)
			st.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := br.Peek(1); err == nil {
				t.Fatal("the idle stream sent data")
			}
			st.SetReadDeadline(time.Time{})
			if _, body, err := get(t, c, context.Background(), "GET", "/"); err != nil || body != "ok" {
				t.Fatalf("GET after the idle stream closed: %v %q", err, body)
			}
			if n := streams.Load(); n != 2 {
				t.Errorf("streams: got %d, want 2", n)
			}
		})
	}
}

// TestClientBodyClosedEarly: an answer closed before its end does not
// leave its rest to be read as the next answer.
func TestClientBodyClosedEarly(t *testing.T) {
	c, streams := served(t, tunnel.TransportTCP, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path+strings.Repeat("-", 100000))
	}), 0)
	req, _ := http.NewRequest("GET", "http://agent/first", nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close()
	if _, body, err := get(t, c, context.Background(), "GET", "/second"); err != nil || !strings.HasPrefix(body, "/second-") {
		t.Fatalf("second: %v %.20q", err, body)
	}
	if n := streams.Load(); n != 2 {
		t.Errorf("streams: got %d, want 2 (the cut one is not kept)", n)
	}
}

// TestClientCallEnds: a call whose context ends while the agent is slow
// returns at once with the context's error.
func TestClientCallEnds(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c, _ := served(t, tunnel.TransportTCP, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), 0)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := get(t, c, ctx, "GET", "/slow")
		errc <- err
	}()
	cancel()
	if err := testwait.Recv(t, 10*time.Second, "the call to end with its context", errc); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// TestClient1xx: informational answers go to the trace, as with
// http.Transport, and the final answer is returned.
func TestClient1xx(t *testing.T) {
	c, _ := served(t, tunnel.TransportTCP, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	}), 0)
	var got []int
	var mu sync.Mutex
	ctx := withTrace(context.Background(), func(code int) { mu.Lock(); got = append(got, code); mu.Unlock() })
	resp, body, err := get(t, c, ctx, "GET", "/")
	if err != nil || resp.StatusCode != 200 || body != "final" {
		t.Fatalf("got %v %v %q", err, resp, body)
	}
	if len(got) != 1 || got[0] != http.StatusEarlyHints {
		t.Errorf("1xx seen: %v, want [103]", got)
	}
}

// FuzzClientLikeTransport sends a GET to a server that answers with fuzzed
// bytes, once through Client and once through http.Transport on streams
// of the same kind: both must agree on whether there is an answer and, if
// so, on its status, headers and body.
func FuzzClientLikeTransport(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
	f.Add("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
	f.Add("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	f.Add("HTTP/1.0 200 OK\r\n\r\nbody until close")
	f.Add("garbage\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
	f.Fuzz(func(t *testing.T, answer string) {
		if strings.Contains(answer, "HTTP/1.1 101") || strings.Contains(answer, "101 ") {
			t.Skip("protocol switches are refused before the tunnel")
		}
		results := make([]string, 2)
		for i, full := range []bool{false, true} {
			agent, gw := sessiontest.SessionPair(t, tunnel.TransportTCP, tunnel.Options{})
			go func() {
				st, err := agent.AcceptStream(context.Background())
				if err != nil {
					return
				}
				br := bufio.NewReader(st)
				http.ReadRequest(br)
				io.WriteString(st, answer)
				tunnel.CloseWrite(st)
				io.Copy(io.Discard, st)
				st.Close()
			}()
			var rt http.RoundTripper = streamhttp.NewClient(gw)
			if full {
				rt = streamhttp.NewTransport(gw)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://agent/x", nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				results[i] = "error"
			} else {
				b, berr := io.ReadAll(resp.Body)
				resp.Body.Close()
				resp.Header.Del("Date")
				results[i] = resp.Status + "|" + headerString(resp.Header) + "|" + string(b) + "|" + errString(berr)
			}
			cancel()
			gw.Close()
			agent.Close()
		}
		if results[0] != results[1] {
			t.Errorf("answer %q:\nClient:    %q\nTransport: %q", answer, results[0], results[1])
		}
	})
}

func headerString(h http.Header) string {
	var b strings.Builder
	h.Write(&b)
	return b.String()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return "body error"
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// withTrace returns ctx with a client trace that reports 1xx answers.
func withTrace(ctx context.Context, got1xx func(code int)) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { got1xx(code); return nil },
	})
}
