package sessiontest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/streamhttp"
)

// GatewayOptions say how a Gateway answers.
type GatewayOptions struct {
	// Addr is where it listens (TCP and UDP); "" is 127.0.0.1:0.
	Addr string
	// TLS holds its certificate.
	TLS *tls.Config
	// Answer says what the n-th hello (from 0) gets: a tunnel.Welcome or
	// a tunnel.Reject. Calls are one at a time, in the order the hellos
	// came. A Welcome without a SessionID gets one. Nil welcomes every
	// agent.
	Answer func(n int, h tunnel.Hello) tunnel.Message
	// Handlers see the control messages of each welcomed session.
	Handlers tunnel.Handlers
	// Hold keeps a session open once the agent has half-closed its
	// control stream, for tests that play that part of the drain
	// themselves; by default the Gateway then closes it, as a gateway
	// does once the agent has drained (tunnel/spec.md).
	Hold bool
}

// Gateway is a fake gateway on tunnel.Listen: it answers each hello as
// GatewayOptions.Answer says, reads the control stream of each welcomed
// session with a tunnel.ControlLoop and hands the session to the test,
// which plays the gateway's part on it (or a hostile one).
type Gateway struct {
	opts     GatewayOptions
	l        *tunnel.Listener
	sessions chan *GatewaySession // welcomed, for Next
	ctx      context.Context      // ends at Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the accept loop and one goroutine per session

	mu   sync.Mutex // guards n and live
	n    int        // hellos so far
	live map[*GatewaySession]struct{}
}

// GatewaySession is one welcomed agent session of a Gateway.
type GatewaySession struct {
	ID      string
	Hello   tunnel.Hello
	Session tunnel.Session
	// Loop reads the control stream; send with Loop.Send.
	Loop *tunnel.ControlLoop
}

// StartGateway starts a Gateway, closed when the test ends. Its error is
// that of the listen, for tests that try several addresses.
func StartGateway(t testing.TB, opts GatewayOptions) (*Gateway, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	l, err := tunnel.Listen(opts.Addr, opts.TLS, tunnel.Options{}, nil)
	if err != nil {
		return nil, err
	}
	g := &Gateway{opts: opts, l: l, sessions: make(chan *GatewaySession, 1024), live: map[*GatewaySession]struct{}{}}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.wg.Go(g.accept)
	t.Cleanup(g.Close)
	return g, nil
}

// Addr is the address the Gateway listens on.
func (g *Gateway) Addr() string { return g.l.Addr().String() }

func (g *Gateway) accept() {
	for {
		s, err := g.l.Accept(g.ctx)
		if err != nil {
			return
		}
		g.wg.Go(func() { g.serve(s) })
	}
}

// serve answers the hello of s and, once welcomed, reads its control
// stream until the agent half-closes it or the session ends.
func (g *Gateway) serve(s tunnel.Session) {
	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	ctrl, hello, err := tunnel.ServerHandshake(ctx, s)
	cancel()
	if err != nil {
		s.Close()
		return
	}
	g.mu.Lock()
	var answer tunnel.Message = tunnel.Welcome{}
	if g.opts.Answer != nil {
		answer = g.opts.Answer(g.n, hello)
	}
	g.n++
	n := g.n
	g.mu.Unlock()
	if rej, ok := answer.(tunnel.Reject); ok {
		ctrl.Send(rej)
		// The agent closes the session once it has read the reject.
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
		case <-g.ctx.Done():
		}
		s.Close()
		return
	}
	w, ok := answer.(tunnel.Welcome)
	if !ok {
		panic(fmt.Sprintf("sessiontest: Answer gave a %T, want a Welcome or a Reject", answer))
	}
	if w.SessionID == "" {
		w.SessionID = fmt.Sprintf("fake-%d", n)
	}
	if w.GatewayVersion == "" {
		w.GatewayVersion = "fake"
	}
	if err := ctrl.Send(w); err != nil {
		s.Close()
		return
	}
	gs := &GatewaySession{ID: w.SessionID, Hello: hello, Session: s,
		Loop: tunnel.StartControl(s, ctrl, g.opts.Handlers)}
	g.mu.Lock()
	g.live[gs] = struct{}{}
	g.mu.Unlock()
	select {
	case g.sessions <- gs:
	default: // nobody takes them: the test counts Live instead
	}
	select {
	case <-gs.Loop.Done():
	case <-g.ctx.Done():
	}
	g.mu.Lock()
	delete(g.live, gs)
	g.mu.Unlock()
	if !g.opts.Hold || g.ctx.Err() != nil {
		gs.Close()
	}
	gs.Loop.Wait()
}

// Next waits for the next welcomed session.
func (g *Gateway) Next(t testing.TB, timeout time.Duration) *GatewaySession {
	t.Helper()
	return testwait.Recv(t, timeout, "an agent session at the fake gateway", g.sessions)
}

// Live returns the welcomed sessions whose control stream is still read:
// neither drained by the agent nor ended.
func (g *Gateway) Live() []*GatewaySession {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*GatewaySession, 0, len(g.live))
	for gs := range g.live {
		out = append(out, gs)
	}
	return out
}

// GoAway asks every live session to move, as a stopping gateway does,
// with nothing in flight: goaway, then the acknowledgement at once.
func (g *Gateway) GoAway() {
	for _, gs := range g.Live() {
		gs.GoAway("fake gateway draining")
	}
}

// Drop closes every live session at once, as a crash or a network reset
// does.
func (g *Gateway) Drop() {
	for _, gs := range g.Live() {
		gs.Close()
	}
}

// Close stops the Gateway and closes its sessions.
func (g *Gateway) Close() {
	g.cancel()
	g.l.Close()
	g.wg.Wait()
	for {
		select {
		case gs := <-g.sessions:
			gs.Close()
		default:
			return
		}
	}
}

// GoAway sends goaway and, nothing being in flight, acknowledges it at
// once by half-closing the control stream (tunnel/spec.md).
func (gs *GatewaySession) GoAway(reason string) {
	gs.Loop.Send(tunnel.GoAway{Reason: reason})
	gs.Loop.CloseWrite()
}

// Drain drains the session as a gateway does: GoAway, then it waits (at
// most timeout) for the agent to half-close its side, and closes it.
func (gs *GatewaySession) Drain(timeout time.Duration) {
	gs.GoAway("fake gateway cycling sessions")
	select {
	case <-gs.Loop.Done():
	case <-time.After(timeout):
	}
	gs.Close()
}

// Close closes the session abruptly.
func (gs *GatewaySession) Close() { gs.Session.Close() }

// Get sends GET path with header to the agent: see Get.
func (gs *GatewaySession) Get(path string, header http.Header, timeout time.Duration) (int, []byte, error) {
	return Get(gs.Session, path, header, timeout)
}

// Get sends GET path with header on a new stream of s, as a gateway
// does (streamhttp), closes the stream after the answer, and returns the
// status and body.
func Get(s tunnel.Session, path string, header http.Header, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://agent"+path, nil)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Close = true
	tr := streamhttp.NewTransport(s)
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Agent is a fake agent: one session that has said hello and been
// welcomed, whose control stream a tunnel.ControlLoop reads, and whose
// streams from the gateway a handler serves over streamhttp.
type Agent struct {
	Session tunnel.Session
	Welcome tunnel.Welcome
	// Loop reads the control stream; send with Loop.Send.
	Loop *tunnel.ControlLoop

	srv   *http.Server // nil without a handler
	wg    sync.WaitGroup
	close sync.Once
}

// Connect says hello on s, a session dialled to a gateway, and on welcome
// reads the control stream and serves the streams the gateway opens with
// handler (none when nil). A reject is an error (*tunnel.RejectError),
// and s is left to the caller, as on any error. The Agent is closed when
// the test ends.
func Connect(t testing.TB, s tunnel.Session, hello tunnel.Hello, handler http.Handler) (*Agent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctrl, w, err := tunnel.ClientHandshake(ctx, s, hello)
	if err != nil {
		return nil, err
	}
	a := &Agent{Session: s, Welcome: w, Loop: tunnel.StartControl(s, ctrl, tunnel.Handlers{})}
	if handler != nil {
		a.srv = streamhttp.NewServer(handler, slog.New(slog.DiscardHandler))
		a.wg.Go(func() { a.srv.Serve(streamhttp.Listener(s, streamhttp.MaxConcurrentStreams)) })
	}
	t.Cleanup(a.Close)
	return a, nil
}

// ExpectGoAway waits up to within for the peer's goaway on l and returns
// it, failing t if the control stream ends without one or none comes. The
// loop hands a goaway over before it reads the end of the stream, but a
// select over GoAway and Done may still see the end first when both are
// ready (a peer that sends goaway and half-closes at once, as a gateway
// with nothing in flight does); this looks again before failing.
func ExpectGoAway(t testing.TB, l *tunnel.ControlLoop, within time.Duration) tunnel.GoAway {
	t.Helper()
	select {
	case g := <-l.GoAway():
		return g
	case <-l.Done():
		select {
		case g := <-l.GoAway():
			return g
		default:
			t.Fatalf("the control stream ended without a goaway: %v", l.Err())
		}
	case <-time.After(within):
		t.Fatalf("no goaway within %s", within)
	}
	return tunnel.GoAway{}
}

// Close ends the session and waits for the Agent's goroutines.
func (a *Agent) Close() {
	a.close.Do(func() {
		a.Session.Close()
		if a.srv != nil {
			a.srv.Close()
		}
		a.wg.Wait()
		a.Loop.Wait()
	})
}
