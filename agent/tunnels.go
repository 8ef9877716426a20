package agent

import (
	"errors"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/internal/clip"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// States of a connection on the status page.
const (
	connDialing = "connecting"
	connUp      = "up"
	connWaiting = "waiting" // down, waiting to dial again
)

// TunnelStatus is one of the agent's connections (gateway.connections)
// in /api/status.
type TunnelStatus struct {
	Conn int `json:"conn"`
	// Endpoint is the address dialled (IP:port, or host:port through a
	// proxy), and Gateway the configured address it comes from.
	Endpoint  string    `json:"endpoint,omitempty"`
	Gateway   string    `json:"gateway,omitempty"`
	Transport string    `json:"transport,omitempty"`
	State     string    `json:"state"` // connecting, up, waiting
	Since     time.Time `json:"since"`
	Session   string    `json:"session,omitempty"` // the gateway's session id
	// RTTMS is the round-trip time the transport measures (tunnel.RTT);
	// 0 until measured.
	RTTMS      float64    `json:"rtt_ms,omitempty"`
	Reconnects int        `json:"reconnects"`
	LastError  string     `json:"last_error,omitempty"`
	LastErrAt  *time.Time `json:"last_error_at,omitempty"`
	RetryAt    *time.Time `json:"retry_at,omitempty"` // state waiting: the next dial
}

// connTable is what each connection of the agent is doing. keepConnected
// and session write it; the status page reads it.
type connTable struct {
	mu    sync.Mutex // guards conns
	conns []*connState
}

type connState struct {
	TunnelStatus
	sess tunnel.Session // while up, for its RTT
}

// conn returns connection idx's state, making it when new.
func (t *connTable) conn(idx int) *connState {
	for len(t.conns) <= idx {
		t.conns = append(t.conns, &connState{TunnelStatus: TunnelStatus{Conn: len(t.conns), State: connDialing, Since: time.Now().UTC()}})
	}
	return t.conns[idx]
}

// resize keeps n connections: a reload may change gateway.connections.
func (t *connTable) resize(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.conns) > n {
		t.conns = t.conns[:n]
	}
	t.conn(n - 1)
}

func (t *connTable) dialing(idx int, ep endpoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.conn(idx)
	c.State, c.Since, c.Endpoint, c.Gateway, c.RetryAt = connDialing, time.Now().UTC(), ep.addr, ep.name, nil
}

func (t *connTable) up(idx int, s tunnel.Session, sessionID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.conn(idx)
	c.State, c.Since, c.Transport, c.Session, c.sess = connUp, time.Now().UTC(), s.Transport(), clip.String(sessionID, 64), s
}

// down records that connection idx ended or failed with err (nil: ended
// cleanly) and dials again after wait.
func (t *connTable) down(idx int, err error, wait time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.conn(idx)
	now := time.Now().UTC()
	retry := now.Add(wait)
	c.State, c.Since, c.Session, c.sess, c.RetryAt = connWaiting, now, "", nil, &retry
	c.Reconnects++
	if err != nil && !errors.Is(err, errGoAway) {
		c.LastError, c.LastErrAt = clip.String(err.Error(), 300), &now
	}
}

// snapshot returns the connections' states.
func (t *connTable) snapshot() []TunnelStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]TunnelStatus, len(t.conns))
	for i, c := range t.conns {
		out[i] = c.TunnelStatus
		if c.sess != nil {
			if d, ok := tunnel.RTT(c.sess); ok {
				out[i].RTTMS = float64(d.Microseconds()) / 1000
			}
		}
	}
	return out
}
