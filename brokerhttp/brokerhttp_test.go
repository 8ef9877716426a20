package brokerhttp

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oxsecurity/oxbroker/internal/rawhttp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// answerBound bounds the wait for an answer the server must send at once:
// a failing test waits this long, a passing one not at all.
const answerBound = 10 * time.Second

// serve runs h on a real server on 127.0.0.1, as the gateway and the
// agent run theirs.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// exchange writes raw on a new connection and reads one answer; the
// connection stays open for the caller.
func exchange(t *testing.T, addr, raw string) (*rawhttp.Conn, *http.Response, string) {
	t.Helper()
	c, err := rawhttp.Dial(addr, time.Now().Add(answerBound))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	resp, body, _, err := c.Send(raw)
	if err != nil {
		t.Fatalf("no answer to %.40q while the body is unsent: %v", raw, err)
	}
	return c, resp, string(body)
}

// refuse answers 413 without reading the body, as the agent's proxy does
// for a Content-Length over max_body.
var refuse = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	WriteError(w, TooLarge, "too large", "")
})

// TestGuardBodiesEarlyAnswer: an answer given before the body has come
// reaches a client that waits for it before sending the body, and the
// connection is then closed. Without GuardBodies the answer waits for the
// body (Go's server reads what is left of it first).
func TestGuardBodiesEarlyAnswer(t *testing.T) {
	tests := []struct {
		name    string
		handler http.Handler
		raw     string // a request whose body is not (all) sent
	}{
		{"Content-Length under 256 KiB", refuse,
			"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"},
		{"Content-Length of 60 MB, body wrapped by the handler", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = struct{ io.ReadCloser }{r.Body} // as the gateway wraps it
			refuse(w, r)
		}), "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n"},
		{"chunked", refuse,
			"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"part read", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.ReadFull(r.Body, make([]byte, 10))
			refuse(w, r)
		}), "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789"},
		{"Expect: 100-continue", refuse,
			"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n"},
		{"handler writes nothing", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
			"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"},
	}
	// A read still running in another goroutine when the handler answers,
	// as when a transport copies the body upstream and the upstream
	// answers first.
	copied := make(chan error, 1)
	tests = append(tests, struct {
		name    string
		handler http.Handler
		raw     string
	}{"read running in another goroutine", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		go func() {
			_, err := io.Copy(io.Discard, r.Body)
			copied <- err
		}()
		refuse(w, r)
	}), "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n01234"})
	defer func() {
		if err := <-copied; err == nil {
			t.Error("the other goroutine read the body to its end, want a read error")
		}
	}()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, GuardBodies(tt.handler, 0))
			c, resp, _ := exchange(t, addr, tt.raw)
			if resp.StatusCode != 413 && resp.StatusCode != 200 {
				t.Errorf("status: got %d, want the handler's", resp.StatusCode)
			}
			if !resp.Close {
				t.Error(`the answer does not say "Connection: close"`)
			}
			if err := c.Closed(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestGuardBodiesKeepsAlive: a body read to its end changes nothing; the
// connection serves the next request.
func TestGuardBodiesKeepsAlive(t *testing.T) {
	addr := serve(t, GuardBodies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, string(b))
	}), 0))
	c, resp, body := exchange(t, addr, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	if resp.Close || body != "hello" {
		t.Fatalf("got close=%v %q, want a kept-alive echo", resp.Close, body)
	}
	_, b, _, err := c.Send("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
	if err != nil {
		t.Fatalf("second request on the connection: %v", err)
	}
	if string(b) != "hi" {
		t.Errorf("second answer: got %q, want hi", b)
	}
}

// TestGuardBodiesStall: a body that sends nothing for the stall limit
// fails the handler's read with a StalledError; the handler still answers,
// and the connection is closed.
func TestGuardBodiesStall(t *testing.T) {
	const stall = 100 * time.Millisecond
	addr := serve(t, GuardBodies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		if _, ok := errors.AsType[*StalledError](err); !ok {
			WriteError(w, BadRequest, "want a StalledError, got: "+errorString(err), "")
			return
		}
		WriteError(w, BadRequest, err.Error(), "")
	}), stall))
	c, resp, body := exchange(t, addr, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
	if resp.StatusCode != 400 || !strings.Contains(body, "no byte of the request body arrived for 100ms") {
		t.Errorf("got %d %s, want 400 saying the body stalled", resp.StatusCode, body)
	}
	if err := c.Closed(); err != nil {
		t.Error(err)
	}
}

// TestGuardBodiesBusyHandlerNotTimed: only a read that waits is timed; a
// handler busy elsewhere for longer than the stall limit (Jira reading
// slowly) gets the rest of the body.
func TestGuardBodiesBusyHandlerNotTimed(t *testing.T) {
	const stall = 50 * time.Millisecond
	addr := serve(t, GuardBodies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			WriteError(w, BadRequest, err.Error(), "")
			return
		}
		time.Sleep(4 * stall) // busy: the rest of the body is already sent
		rest, err := io.ReadAll(r.Body)
		if err != nil {
			WriteError(w, BadRequest, err.Error(), "")
			return
		}
		io.WriteString(w, string(first)+string(rest))
	}), stall))
	_, resp, body := exchange(t, addr, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhelloworld")
	if resp.StatusCode != 200 || body != "helloworld" {
		t.Errorf("got %d %q, want 200 helloworld", resp.StatusCode, body)
	}
}

func errorString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestStatusRecorderSkips1xx: informational answers are passed on but the
// final status is what is recorded.
func TestStatusRecorderSkips1xx(t *testing.T) {
	tests := []struct {
		name   string
		write  func(w http.ResponseWriter)
		status int
		bytes  int64
	}{
		{"100 then 201", func(w http.ResponseWriter) { w.WriteHeader(100); w.WriteHeader(201); io.WriteString(w, "ok") }, 201, 2},
		{"103 then implicit 200", func(w http.ResponseWriter) { w.WriteHeader(103); io.WriteString(w, "abc") }, 200, 3},
		{"101", func(w http.ResponseWriter) { w.WriteHeader(101) }, 101, 0},
		{"nothing", func(http.ResponseWriter) {}, 0, 0},
		{"404 then 500", func(w http.ResponseWriter) { w.WriteHeader(404); w.WriteHeader(500) }, 404, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan StatusRecorder, 1)
			addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := &StatusRecorder{ResponseWriter: w}
				tt.write(rec)
				got <- *rec
			}))
			exchange(t, addr, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
			rec := <-got
			if rec.Status != tt.status || rec.Bytes != tt.bytes {
				t.Errorf("got status %d, %d bytes; want %d, %d", rec.Status, rec.Bytes, tt.status, tt.bytes)
			}
		})
	}
}
