package sessiontest

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/streamhttp"
)

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
