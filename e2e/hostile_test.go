package e2e

// The abuse suite: hostile input to every listener of the real processes.
// Each attack gets a clear refusal (or the connection closed within a
// stated bound), and the process keeps serving everyone else.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/sessiontest"
)

// gatewayRoots trusts e's CA, as an agent with gateway.ca_file does.
func gatewayRoots(t *testing.T, e *env) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(e.Certs.CACert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return roots
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// closedWithin reports whether the peer closed c (EOF or reset, after
// reading and discarding anything it sent) within d.
func closedWithin(c net.Conn, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return time.Since(start), false
	}
	return time.Since(start), true
}

// clientHello returns the first flight of a TLS client offering ALPN
// oxbroker/1: a real ClientHello, to be cut short.
func clientHello(t *testing.T) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tls.Client(c1, &tls.Config{ServerName: "127.0.0.1", NextProtos: []string{tunnel.ALPN}}).Handshake()
	}()
	buf := make([]byte, 8192)
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c2.Read(buf)
	c1.Close()
	c2.Close()
	<-done
	if err != nil || n < 100 {
		t.Fatalf("capture ClientHello: %d bytes, %v", n, err)
	}
	return buf[:n]
}

// TestHostile sends hostile input to every listener: the gateway's tunnel
// port (TCP and UDP) and admin port, the agent's tunnel streams (from a
// malicious gateway), the connector API (slowloris, the smuggling and
// traversal corpus). The scenarios run at once: most of their time is
// spent waiting for timeouts.
func TestHostile(t *testing.T) {
	concurrently(t, []namedTest{
		{"tunnel-port", testTunnelPort},
		{"malicious-gateway/tcp", func(t *testing.T) { testStreamFlood(t, "tcp") }},
		{"malicious-gateway/quic", func(t *testing.T) { testStreamFlood(t, "quic") }},
		{"slowloris", testSlowloris},
		{"connector-corpus", testConnectorCorpus},
	})
}

// testTunnelPort sends garbage to the gateway's tunnel port: raw
// bytes and cut-short TLS over TCP, garbage and cut-short frames after a
// valid TLS handshake with ALPN, a hello announcing 10 MiB and garbage
// control frames on both transports, random UDP datagrams. Each is closed
// within its bound without the payload being read, and the two agents
// connected before keep their sessions.
func testTunnelPort(t *testing.T) {
	e, gw, before := startWithHonestAgents(t)
	rssBefore, err := rssKiB(gw)
	if err != nil {
		t.Fatal(err)
	}
	roots := gatewayRoots(t, e)
	tlsConf := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{tunnel.ALPN}}
	const atOnce = 3 * time.Second // garbage is refused at once
	// A peer that says nothing useful is dropped by a timeout: the TLS
	// handshake's, the hello's (10 s), or yamux's keepalive (2 s + 8 s).
	const byTimeout = 10*time.Second + slack

	dialTCP := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", e.tunnelAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dialTLS := func(t *testing.T) net.Conn {
		c, err := tls.Dial("tcp", e.tunnelAddr, tlsConf)
		if err != nil {
			t.Fatal(err)
		}
		if p := c.ConnectionState().NegotiatedProtocol; p != tunnel.ALPN {
			t.Fatalf("ALPN: got %q", p)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// session dials a tunnel session but sends no hello: the test plays a
	// broken or hostile agent on its control stream.
	session := func(t *testing.T, tr string) (tunnel.Session, net.Conn) {
		d := &tunnel.Dialer{Transport: tr, TLS: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := d.Dial(ctx, e.tunnelAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		st, err := s.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s, st
	}
	sessionClosed := func(t *testing.T, s tunnel.Session, bound time.Duration, what string) {
		start := time.Now()
		select {
		case <-s.Done():
			t.Logf("MEASURE %s: %s closed after %s", t.Name(), what, time.Since(start).Round(10*time.Millisecond))
		case <-time.After(bound):
			t.Errorf("%s: session still open after %s", what, bound)
		}
	}

	// garbage writes n strings of size random bytes, each on a new
	// connection from dial, and checks that each is closed at once.
	garbage := func(t *testing.T, dial func(*testing.T) net.Conn, n, size int, what string) {
		for range n {
			c := dial(t)
			c.Write(randomBytes(size))
			if took, ok := closedWithin(c, atOnce); !ok {
				t.Errorf("%s: still open after %s", what, took)
			}
		}
	}
	// truncated writes b on a connection from dial and checks that it is
	// closed by the handshake timeout.
	truncated := func(t *testing.T, dial func(*testing.T) net.Conn, b []byte, what string) {
		c := dial(t)
		c.Write(b)
		took, ok := closedWithin(c, byTimeout)
		if !ok {
			t.Errorf("%s: still open after %s", what, took)
		}
		t.Logf("MEASURE %s: closed after %s", t.Name(), took.Round(10*time.Millisecond))
	}

	var attacks []namedTest
	add := func(name string, f func(*testing.T)) { attacks = append(attacks, namedTest{name, f}) }
	{
		add("tcp/random-bytes", func(t *testing.T) { garbage(t, dialTCP, 16, 64<<10, "random bytes on TCP") })
		add("tcp/truncated-client-hello", func(t *testing.T) {
			hello := clientHello(t)
			truncated(t, dialTCP, hello[:len(hello)/2], "half a ClientHello")
		})
		add("tls-alpn/random-bytes", func(t *testing.T) { garbage(t, dialTLS, 8, 16<<10, "random bytes after TLS+ALPN") })
		add("tls-alpn/truncated-yamux-header", func(t *testing.T) {
			// 6 of a 12-byte header: a SYN cut short.
			truncated(t, dialTLS, []byte{0, 1, 0, 1, 0, 0}, "truncated yamux header")
		})
		for _, tr := range transports {
			add(tr+"/hello-of-10MiB", func(t *testing.T) {
				// Ten at once: if the gateway allocated what they announce,
				// its memory would jump by 100 MiB.
				var wg sync.WaitGroup
				for range 10 {
					s, st := session(t, tr)
					wg.Add(1)
					go func() {
						defer wg.Done()
						var hdr [4]byte
						binary.BigEndian.PutUint32(hdr[:], 10<<20)
						st.SetWriteDeadline(time.Now().Add(atOnce))
						st.Write(hdr[:])
						st.Write([]byte(`{"type":"hello","token":"`))
						st.Write(randomBytes(256 << 10)) // ends when the gateway closes
						sessionClosed(t, s, atOnce, "hello of 10 MiB")
					}()
				}
				wg.Wait()
			})
			add(tr+"/garbage-control-frame", func(t *testing.T) {
				s, st := session(t, tr)
				frame, _ := tunnel.AppendFrame(nil, randomBytes(200))
				st.Write(frame)
				sessionClosed(t, s, atOnce, "a frame of random bytes")
			})
			add(tr+"/zero-length-frame", func(t *testing.T) {
				s, st := session(t, tr)
				st.Write([]byte{0, 0, 0, 0})
				sessionClosed(t, s, atOnce, "a zero-length frame")
			})
			add(tr+"/welcome-instead-of-hello", func(t *testing.T) {
				s, st := session(t, tr)
				b, _ := tunnel.EncodeMessage(tunnel.Welcome{SessionID: "x"})
				frame, _ := tunnel.AppendFrame(nil, b)
				st.Write(frame)
				sessionClosed(t, s, atOnce, "a welcome from the agent")
			})
			add(tr+"/truncated-hello", func(t *testing.T) {
				s, st := session(t, tr)
				st.Write([]byte{0, 0, 0, 100})
				st.Write([]byte(`{"type":"hel`)) // 12 of 100 bytes, then silence
				sessionClosed(t, s, byTimeout, "a truncated hello")
			})
		}
		add("udp/random-datagrams", func(t *testing.T) {
			for range 4 {
				c, err := net.Dial("udp", e.tunnelAddr)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 500 {
					b := randomBytes(1 + i%1400)
					if i%2 == 0 && len(b) > 5 {
						// A QUIC v1 long-header Initial with random contents.
						b[0] = 0xc0 | b[0]&0x0f
						copy(b[1:5], []byte{0, 0, 0, 1})
					}
					c.Write(b)
				}
				c.Close()
			}
		})
		add("admin/random-bytes", func(t *testing.T) {
			for range 4 {
				c, err := net.Dial("tcp", e.adminAddr)
				if err != nil {
					t.Fatal(err)
				}
				c.Write(randomBytes(8 << 10))
				if took, ok := closedWithin(c, atOnce+5*time.Second); !ok {
					t.Errorf("random bytes on the admin port: still open after %s", took)
				}
				c.Close()
			}
		})
	}
	t.Run("attacks", func(t *testing.T) { concurrently(t, attacks) })

	// The gateway survived, kept every agent session, and serves: old
	// agents, new sessions, the admin listener.
	select {
	case <-gw.done:
		t.Fatalf("the gateway exited: %v", gw.cmd.ProcessState)
	default:
	}
	sameSessions(t, e, before, "the attacks")
	e.mustServe("after the attacks")
	if code, body := httpGet(t, "http://"+e.adminAddr+"/healthz"); code != 200 {
		t.Errorf("gateway /healthz after the attacks: %d %s", code, body)
	}
	d := &tunnel.Dialer{Transport: "tcp", TLS: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := d.Dial(ctx, e.tunnelAddr)
	if err != nil {
		t.Fatalf("new session after the attacks: %v", err)
	}
	defer s.Close()
	probe, err := sessiontest.Connect(t, s, tunnel.Hello{BrokerID: "acme", Token: e.BrokerToken, AgentID: "probe"}, nil)
	if err != nil {
		t.Fatalf("hello after the attacks: %v", err)
	}
	probe.Close()
	rssAfter, _ := rssKiB(gw)
	t.Logf("MEASURE %s: gateway RSS %d MiB before the attacks, %d MiB after", t.Name(), rssBefore>>10, rssAfter>>10)
	if rssAfter > rssBefore+64<<10 {
		t.Errorf("gateway RSS grew from %d MiB to %d MiB under the attacks (bound: +64 MiB)", rssBefore>>10, rssAfter>>10)
	}
	recordOutput("gateway metrics after the attacks", scrapeMetrics(t, e.adminAddr))
}

// Bounds of the malicious-gateway scenario.
const (
	hostileStreams = 10_000
	// agentStreamLimit is the agent's limit per session (agent/listener.go
	// maxConcurrentStreams, QUIC MaxIncomingStreams, yamux accept backlog).
	agentStreamLimit = 1024
	// agentRSSBound is the most the agent's RSS may reach with 1,024
	// streams held open and the rest pushing: measured 40-45 MiB.
	agentRSSBound = 128 << 10 // KiB
	floodWorkers  = 64
)

// testStreamFlood: a gateway (the fake one, on tunnel.Listen)
// welcomes a real agent, then opens 10,000 streams at once, each sending
// an unfinished request and holding it. The agent serves at most 1,024 at
// once (the rest wait in QUIC stream credit or the yamux backlog, or are
// refused), its /healthz keeps answering, its RSS stays bounded, and once
// the streams go away it serves a normal request again.
func testStreamFlood(t *testing.T, tr string) {
	e := newLowPortEnv(t)
	f := newFakeGateway(t, e)
	admin := lowPortAddr(t, false)
	agent := e.startAgent(agentOpts{transport: tr, address: f.Addr(), serverName: "127.0.0.1", admin: admin, connections: 1})
	fs := f.Next(t, 20*time.Second)
	if code, err := get(fs, "/rest/api/3/myself", 10*time.Second); err != nil || code != 200 {
		t.Fatalf("before the flood: %d, %v", code, err)
	}
	rssBefore, _ := rssKiB(agent)
	goroutinesBefore, _ := metricValue(scrapeMetrics(t, admin), "go_goroutines")

	// The streams are opened by a pool of workers as fast as the agent
	// lets them (the race detector allows 8,128 goroutines, not 10,000),
	// each sends an unfinished request and is held open until release.
	var (
		next, failed atomic.Int64
		mu           sync.Mutex // guards held
		held         []net.Conn
		wg           sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range floodWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= hostileStreams {
				st, err := fs.Session.OpenStream(ctx)
				if err != nil {
					failed.Add(1)
					continue
				}
				st.SetWriteDeadline(time.Now().Add(5 * time.Second))
				st.Write([]byte("GET /rest/api/3/myself HTTP/1.1\r\nHost: agent\r\nOx-Broker-Site: jira\r\n")) // no end of headers
				mu.Lock()
				held = append(held, st)
				mu.Unlock()
			}
		}()
	}
	var released sync.Once
	release := func() {
		released.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			for _, st := range held {
				st.Close()
			}
		})
	}
	defer release()
	// While the flood holds: the agent answers /healthz, and its memory
	// is bounded.
	var (
		peakRSS        int
		peakGoroutines float64
	)
	healthy := true
	for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline); {
		rss, err := rssKiB(agent)
		if err != nil {
			t.Fatalf("the agent died under the flood: %v", err)
		}
		peakRSS = max(peakRSS, rss)
		if code, m := httpGet(t, "http://"+admin+"/metrics"); code == 200 {
			g, _ := metricValue(m, "go_goroutines")
			peakGoroutines = max(peakGoroutines, g)
		} else {
			healthy = false
		}
		if code, _ := httpGet(t, "http://"+admin+"/healthz"); code != 200 {
			healthy = false
		}
		time.Sleep(250 * time.Millisecond)
	}
	wg.Wait()
	opened := int64(len(held))
	release()
	t.Logf("MEASURE %s: %d streams asked for, %d opened and held, %d refused or timed out; agent RSS %d MiB before, %d MiB at the peak; goroutines %.0f before, %.0f at the peak",
		t.Name(), hostileStreams, opened, failed.Load(), rssBefore>>10, peakRSS>>10, goroutinesBefore, peakGoroutines)
	// One goroutine per stream served: at most 1,024 more than before.
	if peakGoroutines > goroutinesBefore+agentStreamLimit+64 {
		t.Errorf("the agent ran %.0f goroutines under the flood (%.0f before): more than %d streams served at once",
			peakGoroutines, goroutinesBefore, agentStreamLimit)
	}
	if !healthy {
		t.Error("the agent's /healthz did not answer 200 during the flood")
	}
	// QUIC: the agent grants 1,024 streams; yamux: 1,024 served plus
	// 1,024 in the accept backlog; the opener never got more.
	limit := int64(agentStreamLimit)
	if tr == "tcp" {
		limit = 2 * agentStreamLimit
	}
	if opened > limit {
		t.Errorf("the gateway held %d streams open at once, want at most %d (the agent's limit)", opened, limit)
	}
	if opened < agentStreamLimit {
		t.Errorf("only %d streams opened: the flood did not reach the agent's limit of %d", opened, agentStreamLimit)
	}
	if peakRSS > agentRSSBound {
		t.Errorf("agent RSS reached %d MiB under the flood, want under %d MiB", peakRSS>>10, agentRSSBound>>10)
	}

	// Served again afterwards, on the same session.
	took, ok := testwait.Until(20*time.Second, func() bool {
		code, err := get(fs, "/rest/api/3/myself", 5*time.Second)
		return err == nil && code == 200
	})
	if !ok {
		t.Fatalf("the agent did not serve again within %s of the flood", took)
	}
	t.Logf("MEASURE %s: serving again %s after the flood ended", t.Name(), took.Round(10*time.Millisecond))
	select {
	case <-agent.done:
		t.Fatalf("the agent exited: %v", agent.cmd.ProcessState)
	default:
	}
	recordOutput("agent metrics after the flood", scrapeMetrics(t, admin))
}

// testSlowloris: 200 connections send their headers one byte a
// second. The gateway's ReadHeaderTimeout (10 s) cuts every one, and
// connectors keep being served meanwhile.
func testSlowloris(t *testing.T) {
	e := newLowPortEnv(t)
	e.startGateway()
	e.startAgent(agentOpts{transport: "tcp"})
	e.waitSessions(2, "tcp", 15*time.Second)
	const (
		conns          = 200
		headerTimeout  = 10 * time.Second // gateway.Listen: ReadHeaderTimeout
		cutWithin      = headerTimeout + slack
		servedWithin   = 2 * time.Second
		trickleHeaders = "GET /b/acme/jira/rest/api/3/myself HTTP/1.1\r\nHost: gw\r\nX-Slow: " // then a byte a second
	)
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex // guards cutAfter
		cutAfter       []time.Duration
		notCut         atomic.Int32
		stop           = make(chan struct{})
		connectedSlows atomic.Int32
	)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", e.apiAddr)
			if err != nil {
				return
			}
			defer c.Close()
			connectedSlows.Add(1)
			start := time.Now()
			closed := make(chan struct{})
			go func() { // the gateway's close shows as EOF here
				defer close(closed)
				c.SetReadDeadline(start.Add(cutWithin + 2*time.Second))
				io.Copy(io.Discard, c)
			}()
			for i := 0; ; i++ {
				b := []byte{'a'}
				if i == 0 {
					b = []byte(trickleHeaders)
				}
				c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write(b); err != nil {
					break
				}
				select {
				case <-closed:
				case <-stop:
					return
				case <-time.After(time.Second):
					continue
				}
				break
			}
			<-closed
			took := time.Since(start)
			mu.Lock()
			cutAfter = append(cutAfter, took)
			mu.Unlock()
			if took > cutWithin {
				notCut.Add(1)
			}
		}()
	}
	// Meanwhile a connector is served as usual.
	var slowest time.Duration
	for end := time.Now().Add(headerTimeout + 1*time.Second); time.Now().Before(end); {
		r := e.connectorGet("/rest/api/3/myself", 10*time.Second)
		if r.err != nil || r.status != 200 {
			t.Errorf("a connector during the slowloris: %d %v", r.status, r.err)
		}
		slowest = max(slowest, r.took)
		time.Sleep(250 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cutWithin + 5*time.Second):
		close(stop)
		<-done
		t.Fatal("slowloris connections still open well after the header timeout")
	}
	slices.Sort(cutAfter)
	if connectedSlows.Load() != conns || len(cutAfter) != conns {
		t.Fatalf("slowloris: %d connected, %d ended, want %d", connectedSlows.Load(), len(cutAfter), conns)
	}
	t.Logf("MEASURE %s: %d slow connections cut after %s … %s; slowest connector call meanwhile %s",
		t.Name(), conns, cutAfter[0].Round(10*time.Millisecond), cutAfter[len(cutAfter)-1].Round(10*time.Millisecond), slowest.Round(time.Millisecond))
	if n := notCut.Load(); n > 0 {
		t.Errorf("%d of %d slow connections were not cut within %s", n, conns, cutWithin)
	}
	if cutAfter[0] < headerTimeout-time.Second {
		t.Errorf("a slow connection was cut after %s, before the %s header timeout: something else closed it", cutAfter[0], headerTimeout)
	}
	if slowest > servedWithin {
		t.Errorf("a connector call took %s during the slowloris, want under %s", slowest, servedWithin)
	}
}

// smuggled is a second request hidden after a first one's body: if it is
// ever served, Jira sees /issue/SMUGGLED-1.
func smuggled(token string) string {
	return "GET /b/acme/jira/rest/api/3/issue/SMUGGLED-1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + token + "\r\n\r\n"
}

// testConnectorCorpus sends the request-smuggling and traversal
// corpus to the connector API as raw bytes. Each gets a clear refusal:
// 400/403/431/501 (the broker's own error, or Go's), is never answered
// twice on its connection, and nothing of it reaches Jira; the gateway
// keeps serving.
func testConnectorCorpus(t *testing.T) {
	e := newLowPortEnv(t)
	e.startGateway()
	e.startAgent(agentOpts{transport: "tcp"})
	e.waitSessions(2, "tcp", 15*time.Second)
	e.mustServe("before the corpus")
	e.Jira.Reset()

	auth := "Authorization: Bearer " + e.ConnectorToken + "\r\n"
	smug := smuggled(e.ConnectorToken)
	post := "POST /b/acme/jira/rest/api/3/search/jql HTTP/1.1\r\nHost: gw\r\n" + auth + "Content-Type: application/json\r\n"
	get := func(target string) string { return "GET " + target + " HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n" }
	const api = "/b/acme/jira/rest/api/3"
	corpus := []struct {
		name, raw string
	}{
		// Framing: CL+TE and its obfuscations, TE variants, duplicate CL.
		{"CL+TE", post + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smug},
		{"TE+CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 200\r\n\r\n0\r\n\r\n" + smug},
		{"CL+TE ' chunked'", post + "Content-Length: 5\r\nTransfer-Encoding:  chunked\r\n\r\n0\r\n\r\n" + smug},
		{"CL+TE tab chunked", post + "Content-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n" + smug},
		{"CL+TE folded", post + "Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smug},
		{"TE xchunked", post + "Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smug},
		{"TE chunked, identity", post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smug},
		{"TE twice", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + smug},
		{"TE space before colon", post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smug},
		{"CL twice, different", post + "Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}" + smug},
		{"CL list", post + "Content-Length: 2, 2\r\n\r\n{}" + smug},
		{"CL +2", post + "Content-Length: +2\r\n\r\n{}" + smug},
		{"CL -1", post + "Content-Length: -1\r\n\r\n{}" + smug},
		{"bad chunk size", post + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"},
		{"folded first header line", "GET " + api + "/myself HTTP/1.1\r\n Host: gw\r\n" + auth + "\r\n"},
		{"HTTP/0.9 request line", "GET " + api + "/myself\r\n\r\n"},
		{"space in target", "GET " + api + "/my self HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n"},
		{"raw NUL in target", "GET " + api + "/myself\x00 HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n"},
		{"headers over 64 KiB", "GET " + api + "/myself HTTP/1.1\r\nHost: gw\r\n" + auth + "X-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n"},
		{"upgrade", "GET " + api + "/myself HTTP/1.1\r\nHost: gw\r\n" + auth + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		// Targets: absolute-form, traversal and encodings.
		{"absolute-form", "GET http://jira.evil" + api + "/myself HTTP/1.1\r\nHost: jira.evil\r\n" + auth + "\r\n"},
		{"absolute-form, own host", "GET http://gw" + api + "/myself HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n"},
		{"..", get(api + "/issue/../../../../secure/admin")},
		{".. in broker segment", get("/b/acme/../acme/jira/rest/api/3/myself")},
		{"%2e%2e", get(api + "/%2e%2e/%2e%2e/secure/admin")},
		{"%2f", get(api + "/issue/A%2f..%2f..%2fmyself")},
		{"backslash", get(api + "/issue/..\\..\\myself")},
		{"%5c", get(api + "/issue/..%5c..%5cmyself")},
		{"%00", get(api + "/myself%00")},
		{"overlong . (%c0%ae)", get(api + "/%c0%ae%c0%ae/%c0%ae%c0%ae/secure")},
		{"overlong / (%c0%af)", get(api + "/issue/%c0%afmyself")},
		{"double encoding", get(api + "/issue/%252e%252e/myself")},
		{"; parameter", get(api + "/myself;x=..%2f")},
		{"lower-case method", "get " + api + "/myself HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n"},
	}
	refusals := map[int]bool{400: true, 403: true, 431: true, 501: true}
	var cases []namedTest
	for _, c := range corpus {
		cases = append(cases, namedTest{c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", e.apiAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write([]byte(c.raw)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			recordOutput("answer to "+c.name, fmt.Sprintf("%s\n%s", resp.Status, body))
			if !refusals[resp.StatusCode] {
				t.Errorf("got %d %q %s, want a refusal (400, 403, 431 or 501)", resp.StatusCode, resp.Header.Get("Ox-Broker-Error"), body)
			}
			// Never a second answer: whatever followed was not served.
			conn.SetReadDeadline(time.Now().Add(time.Second))
			if resp2, err := http.ReadResponse(br, nil); err == nil {
				resp2.Body.Close()
				t.Errorf("a second answer on the connection: %s (a smuggled request was served)", resp2.Status)
			}
		}})
	}
	t.Run("corpus", func(t *testing.T) { concurrently(t, cases) })
	if reqs := e.Jira.Requests(); len(reqs) > 0 {
		for _, r := range reqs {
			t.Errorf("Jira received %s %s?%s from the corpus", r.Method, r.Path, r.RawQuery)
		}
	}
	e.mustServe("after the corpus")
}

// TestSecretScanCatchesEveryForm checks the end-of-run scan itself:
// it finds a token in clear and in base64 whatever precedes it (as in
// Basic "email:token"), and nothing in text without it.
func TestSecretScanCatchesEveryForm(t *testing.T) {
	tok := "scan-self-test-" + fmt.Sprintf("%x", randomBytes(12))
	idx := newSecretIndex([]string{tok, "other-token-0123456789abcdef"})
	cases := map[string]bool{
		"log line: token=" + tok + " end":                                     true,
		"Authorization: Bearer " + tok:                                        true,
		"Authorization: Basic " + b64(tok):                                    true,
		"Authorization: Basic " + b64("me@acme.com:"+tok):                     true,
		"Authorization: Basic " + b64("a:"+tok):                               true,
		"Authorization: Basic " + b64(":"+tok):                                true,
		"Authorization: Basic " + b64("ab:"+tok):                              true,
		`{"error":{"message":"` + tok[:len(tok)-1] + `"}}`:                    false,
		"nothing here " + strings.Repeat("x", 100):                            false,
		"Authorization: Basic " + b64("me@acme.com:"+tok[:len(tok)-4]+"zzzz"): false,
	}
	for text, want := range cases {
		if got := slices.Contains(idx.find(text), tok); got != want {
			t.Errorf("scan of %.60q: found %v, want %v", text, got, want)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
