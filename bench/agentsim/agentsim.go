// Package agentsim simulates many agents cheaply: each dials the gateway
// with the real tunnel.Dialer, completes the real handshake (hello,
// welcome) and then holds its session idle, serving nothing. When a
// session ends it redials with the protocol's backoff, as oxbroker does.
//
// The benchmark uses it to measure what an idle session costs the gateway
// and how quickly a fleet of agents is back after a gateway restart.
package agentsim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// Config describes the simulated agents.
type Config struct {
	Dialer *tunnel.Dialer
	Addr   string // the gateway's tunnel address
	// Hello is sent by every agent, with AgentID and Hostname made
	// unique per agent.
	Hello tunnel.Hello
}

// Fleet is a set of simulated agents.
type Fleet struct {
	cfg Config

	up       atomic.Int64 // sessions welcomed and not yet ended
	sessions atomic.Int64 // sessions welcomed, ever
	failures atomic.Int64 // dials or handshakes that failed

	mu     sync.Mutex // guards agents
	agents []*agent
}

type agent struct {
	stop context.CancelFunc
	done chan struct{}
	// welcomed is when the agent's current session was welcomed, in
	// Unix nanoseconds; 0 while it has none.
	welcomed atomic.Int64
}

// New returns an empty fleet.
func New(cfg Config) *Fleet { return &Fleet{cfg: cfg} }

// Up returns how many agents have a session now.
func (f *Fleet) Up() int { return int(f.up.Load()) }

// UpSince returns how many agents hold a session that was welcomed at t
// or later: after a gateway restart at t, those that are back.
func (f *Fleet) UpSince(t time.Time) int {
	since := t.UnixNano()
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, a := range f.agents {
		if w := a.welcomed.Load(); w != 0 && w >= since {
			n++
		}
	}
	return n
}

// Failures returns how many dials and handshakes have failed so far.
func (f *Fleet) Failures() int { return int(f.failures.Load()) }

// Len returns how many agents the fleet runs.
func (f *Fleet) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.agents)
}

// Grow starts n more agents and returns once all of the fleet's agents
// have a session, or fails when timeout passes first. At most ramp agents
// dial their first session at once; later reconnects are not limited, as
// real agents are not.
func (f *Fleet) Grow(ctx context.Context, n, ramp int, timeout time.Duration) error {
	gate := make(chan struct{}, ramp)
	f.mu.Lock()
	first := len(f.agents)
	for i := range n {
		actx, stop := context.WithCancel(context.WithoutCancel(ctx))
		a := &agent{stop: stop, done: make(chan struct{})}
		f.agents = append(f.agents, a)
		h := f.cfg.Hello
		h.AgentID = fmt.Sprintf("%s-%05d", h.AgentID, first+i)
		h.Hostname = h.AgentID
		go func() {
			defer close(a.done)
			f.run(actx, a, h, gate)
		}()
	}
	want := len(f.agents)
	f.mu.Unlock()

	deadline := time.Now().Add(timeout)
	for f.Up() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d simulated agents connected within %s (%d failed attempts)", f.Up(), want, timeout, f.Failures())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Shrink stops the n most recently started agents, closing their
// sessions, and waits for them.
func (f *Fleet) Shrink(n int) {
	f.mu.Lock()
	n = min(n, len(f.agents))
	gone := f.agents[len(f.agents)-n:]
	f.agents = f.agents[:len(f.agents)-n]
	f.mu.Unlock()
	for _, a := range gone {
		a.stop()
	}
	for _, a := range gone {
		<-a.done
	}
}

// Close stops every agent and waits for them.
func (f *Fleet) Close() { f.Shrink(f.Len()) }

// errGoAway ends a session whose gateway asked the agent to move.
var errGoAway = errors.New("goaway")

// run is one agent: dial, hold the session, redial after backoff. Its
// first dial waits for a slot of gate.
func (f *Fleet) run(ctx context.Context, a *agent, h tunnel.Hello, gate chan struct{}) {
	select {
	case gate <- struct{}{}:
	case <-ctx.Done():
		return
	}
	var released bool
	release := func() {
		if !released {
			released = true
			<-gate
		}
	}
	defer release()
	bo := tunnel.NewBackoff()
	for ctx.Err() == nil {
		start := time.Now()
		err := f.session(ctx, a, h, release)
		if ctx.Err() != nil {
			return
		}
		release() // a failed first dial gives its slot to the next agent
		if errors.Is(err, errGoAway) {
			bo.Reset()
			continue
		}
		if time.Since(start) > tunnel.StableAfter {
			bo.Reset()
		}
		select {
		case <-time.After(bo.Next()):
		case <-ctx.Done():
			return
		}
	}
}

// session dials and handshakes, calls welcomed, and holds the session
// until it ends, ctx ends, or the gateway sends goaway.
func (f *Fleet) session(ctx context.Context, a *agent, h tunnel.Hello, welcomed func()) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := f.cfg.Dialer.Dial(dctx, f.cfg.Addr)
	if err != nil {
		f.failures.Add(1)
		return err
	}
	defer s.Close()
	ctrl, _, err := tunnel.ClientHandshake(dctx, s, h)
	if err != nil {
		f.failures.Add(1)
		return err
	}
	a.welcomed.Store(time.Now().UnixNano())
	f.up.Add(1)
	f.sessions.Add(1)
	defer func() {
		a.welcomed.Store(0)
		f.up.Add(-1)
	}()
	welcomed()

	loop := tunnel.StartControl(s, ctrl, tunnel.Handlers{})
	defer func() { s.Close(); loop.Wait() }()
	select {
	case <-s.Done():
		return errors.New("session ended")
	case <-loop.GoAway():
		return errGoAway
	case <-loop.Done():
		select {
		case <-loop.GoAway():
			return errGoAway
		default:
			return errors.New("control stream ended")
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}
