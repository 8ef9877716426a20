package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// scanAll runs a fresh scanner over raw, split into pieces of size step.
func scanAll(raw string, step int) framingState {
	c := &framingConn{}
	for len(raw) > 0 {
		k := min(step, len(raw))
		c.scan([]byte(raw[:k]))
		raw = raw[k:]
	}
	return c.state
}

func TestFramingScanner(t *testing.T) {
	const post = "POST /b/acme/jira/x HTTP/1.1\r\nHost: gw\r\n"
	cases := []struct {
		name string
		raw  string
		want framingState
	}{
		{"no body", "GET / HTTP/1.1\r\nHost: gw\r\n\r\n", scanning},
		{"chunked", post + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", teOnly},
		{"CL+TE", post + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", teWithCL},
		{"TE+CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", teWithCL},
		{"CL+TE mixed case", post + "content-LENGTH: 4\r\ntransfer-encoding:\tchunked\r\n\r\n", teWithCL},
		{"CL+TE folded", post + "Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", teWithCL},
		{"CL+TE bare LF", "POST / HTTP/1.1\nHost: gw\nContent-Length: 5\nTransfer-Encoding: chunked\n\n", teWithCL},
		{"leading CRLFs", "\r\n\r\n" + post + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", teWithCL},
		// The body of a Content-Length request is skipped, not scanned:
		// header-like bytes inside it are data.
		{"CL body looks like headers", post + "Content-Length: 31\r\n\r\nTransfer-Encoding: chunked\r\n\r\n", scanning},
		{"CL, then a chunked request", post + "Content-Length: 2\r\n\r\n{}" + post + "Transfer-Encoding: chunked\r\n\r\n", teOnly},
		{"CL, then CL+TE", post + "Content-Length: 2\r\n\r\n{}" + post + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", teWithCL},
		// Lengths the scanner cannot be sure of lose it: a chunked request
		// after them is refused.
		{"CL not a number", post + "Content-Length: 2, 2\r\n\r\n{}", scanLost},
		{"CL twice, different", post + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n", scanLost},
		{"CL negative", post + "Content-Length: -1\r\n\r\n", scanLost},
		{"CL folded", post + "Content-Length:\r\n 2\r\n\r\n{}", scanLost},
		{"CL line too long", post + "Content-Length: " + strings.Repeat("0", 300) + "2\r\n\r\n{}", scanLost},
		{"CL twice, same", post + "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}" + post + "Transfer-Encoding: chunked\r\n\r\n", teOnly},
		{"long other header", post + "X-Big: " + strings.Repeat("a", 5000) + "\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", teWithCL},
		{"long header name", post + strings.Repeat("X", 400) + ": 1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", teWithCL},
	}
	for _, c := range cases {
		// Every way the bytes can arrive gives the same answer.
		for _, step := range []int{1, 2, 3, 7, 64, len(c.raw)} {
			if got := scanAll(c.raw, step); got != c.want {
				t.Errorf("%s (reads of %d bytes): state %d, want %d", c.name, step, got, c.want)
			}
		}
	}
}

// TestFramingOnTheWire sends raw requests to a real server on the API
// listener's wrapping and checks what users rely on: CL+TE is refused
// with 400 and the connection closed, a chunked request is served and
// then the connection is closed, so nothing pipelined after it is served,
// and Content-Length requests keep the connection alive.
func TestFramingOnTheWire(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan string, 16)
	srv := &http.Server{
		ConnContext: withConn,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if msg := checkFraming(w, r); msg != "" {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, msg)
				return
			}
			body, _ := io.ReadAll(r.Body)
			served <- r.URL.Path
			w.Write(body)
		}),
	}
	go srv.Serve(framingListener{ln})
	t.Cleanup(func() { srv.Close() })

	send := func(t *testing.T, raw string) (*bufio.Reader, net.Conn) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, raw); err != nil {
			t.Fatal(err)
		}
		return bufio.NewReader(conn), conn
	}
	read := func(t *testing.T, br *bufio.Reader) (*http.Response, string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	noMore := func(t *testing.T, br *bufio.Reader, conn net.Conn) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(time.Second))
		if resp, err := http.ReadResponse(br, nil); err == nil {
			t.Errorf("a second answer on the connection: %s", resp.Status)
		}
	}
	drain := func() []string {
		var out []string
		for {
			select {
			case p := <-served:
				out = append(out, p)
			default:
				return out
			}
		}
	}
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n"

	t.Run("CL+TE refused and closed", func(t *testing.T) {
		br, conn := send(t, "POST /a HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+smuggled)
		resp, body := read(t, br)
		if resp.StatusCode != 400 || !resp.Close || !strings.Contains(body, "both Content-Length and Transfer-Encoding") {
			t.Errorf("got %d close=%v %q, want 400 with Connection: close", resp.StatusCode, resp.Close, body)
		}
		noMore(t, br, conn)
		if got := drain(); len(got) > 0 {
			t.Errorf("served %v", got)
		}
	})
	t.Run("chunked served, then closed", func(t *testing.T) {
		br, conn := send(t, "POST /a HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"+smuggled)
		resp, body := read(t, br)
		if resp.StatusCode != 200 || body != "{}" || !resp.Close {
			t.Errorf("got %d close=%v %q, want 200 {} with Connection: close", resp.StatusCode, resp.Close, body)
		}
		noMore(t, br, conn)
		if got := drain(); len(got) != 1 || got[0] != "/a" {
			t.Errorf("served %v, want only /a", got)
		}
	})
	t.Run("Content-Length keeps the connection", func(t *testing.T) {
		br, _ := send(t, "POST /a HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\n{}"+
			"POST /b HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
		if resp, body := read(t, br); resp.StatusCode != 200 || body != "{}" || resp.Close {
			t.Errorf("first: got %d close=%v %q, want 200 {} kept alive", resp.StatusCode, resp.Close, body)
		}
		// The second request on the same connection is still scanned.
		if resp, _ := read(t, br); resp.StatusCode != 400 {
			t.Errorf("second (CL+TE): got %d, want 400", resp.StatusCode)
		}
		if got := drain(); len(got) != 1 || got[0] != "/a" {
			t.Errorf("served %v, want only /a", got)
		}
	})
}

func FuzzFramingScanner(f *testing.F) {
	f.Add("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 3)
	f.Add("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 1)
	f.Fuzz(func(t *testing.T, raw string, step int) {
		step = 1 + int(uint(step)%97)
		// How the bytes are split never changes what the scanner decides.
		if a, b := scanAll(raw, step), scanAll(raw, len(raw)+1); a != b {
			t.Fatalf("state %d in reads of %d bytes, %d in one read", a, step, b)
		}
	})
}

// BenchmarkFramingScan is the smuggling guard's cost per request: a
// connector's GET with typical headers, as one read.
func BenchmarkFramingScan(b *testing.B) {
	req := []byte("GET /b/acme/jira/rest/api/3/issue/ABC-1?fields=summary HTTP/1.1\r\nHost: gateway.ox.example\r\n" +
		"Authorization: Bearer 0123456789abcdef0123456789abcdef\r\nAccept: application/json\r\n" +
		"User-Agent: ox-jira-connector/1.0\r\nAccept-Encoding: gzip\r\n\r\n")
	c := &framingConn{}
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		c.scan(req)
	}
}
