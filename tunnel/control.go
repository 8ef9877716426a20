package tunnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/internal/clip"
)

// Message is a control message. Its JSON form is an object with a "type"
// field naming it and the message's own fields beside it.
type Message interface {
	messageType() string
}

// Message types on the control stream.
const (
	TypeHello   = "hello"
	TypeWelcome = "welcome"
	TypeReject  = "reject"
	TypeGoAway  = "goaway"
	TypeSites   = "sites"
)

// Hello is the agent's first message: who it is and what it serves.
type Hello struct {
	Protocol     int        `json:"protocol"`
	BrokerID     string     `json:"broker_id"`
	Token        string     `json:"token"`
	AgentID      string     `json:"agent_id"`
	AgentVersion string     `json:"agent_version"`
	Hostname     string     `json:"hostname"`
	OS           string     `json:"os"`
	Sites        []SiteInfo `json:"sites"`
}

// SiteInfo describes one site of the agent. It never carries credentials.
type SiteInfo struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	URL      string `json:"url"`
	AuthType string `json:"auth_type"`
}

// Welcome accepts the agent.
type Welcome struct {
	SessionID      string `json:"session_id"`
	GatewayVersion string `json:"gateway_version"`
}

// Reject refuses the agent; the gateway closes the session after it.
type Reject struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Reject codes.
const (
	RejectUnauthorized = "unauthorized" // unknown broker or wrong token
	RejectProtocol     = "protocol"     // unsupported protocol version or bad hello
	RejectShutdown     = "shutting_down"
	// RejectOverLimit: the broker has as many sessions, or the hello as
	// many sites, as the gateway takes (its limits: config).
	RejectOverLimit = "over_limit"
)

// GoAway, from the gateway, asks the agent to move: it opens a replacement
// session, then lets the streams of this one finish before closing it.
// From the agent, it says the agent is draining: the gateway sends no new
// requests on the session and closes it once the agent has half-closed the
// control stream and the requests in flight have been read to the end.
type GoAway struct {
	Reason string `json:"reason"`
}

// Sites is the agent's site list after a reload.
type Sites struct {
	Sites []SiteInfo `json:"sites"`
}

func (Hello) messageType() string   { return TypeHello }
func (Welcome) messageType() string { return TypeWelcome }
func (Reject) messageType() string  { return TypeReject }
func (GoAway) messageType() string  { return TypeGoAway }
func (Sites) messageType() string   { return TypeSites }

// LogValue leaves the token out of logs.
func (h Hello) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("protocol", h.Protocol),
		slog.String("broker_id", h.BrokerID),
		slog.String("agent_id", h.AgentID),
		slog.String("agent_version", h.AgentVersion),
		slog.String("hostname", h.Hostname),
		slog.Int("sites", len(h.Sites)),
	)
}

// String leaves the token out of fmt output too.
func (h Hello) String() string {
	return fmt.Sprintf("hello{broker_id=%s agent_id=%s sites=%d}", h.BrokerID, h.AgentID, len(h.Sites))
}

// ErrUnknownMessage is returned (wrapped) for a well-formed message of a
// type this version does not know; callers may ignore it.
var ErrUnknownMessage = errors.New("unknown control message type")

// ErrProtocol is returned (wrapped) by Control.Recv for a bad frame: a
// length of 0 or over MaxFrameSize, a frame cut short by the end of the
// stream, a payload that is not a message (spec.md, "Control stream").
// The session is then closed at once; it is not the end of a drain.
var ErrProtocol = errors.New("control protocol error")

// EncodeMessage returns the JSON form of m, with its "type" field first.
func EncodeMessage(m Message) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	t := m.messageType()
	out := make([]byte, 0, len(body)+len(t)+11)
	out = append(out, `{"type":"`...)
	out = append(out, t...)
	out = append(out, '"')
	if len(body) > 2 { // not "{}"
		out = append(out, ',')
	}
	return append(out, body[1:]...), nil
}

// DecodeMessage parses the JSON form of a message.
func DecodeMessage(b []byte) (Message, error) {
	var env struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var m Message
	switch env.Type {
	case TypeHello:
		m = &Hello{}
	case TypeWelcome:
		m = &Welcome{}
	case TypeReject:
		m = &Reject{}
	case TypeGoAway:
		m = &GoAway{}
	case TypeSites:
		m = &Sites{}
	case "":
		return nil, errors.New("control message: no type")
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownMessage, clip.String(env.Type, 32))
	}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("control message %s: %w", env.Type, err)
	}
	return deref(m), nil
}

func deref(m Message) Message {
	switch v := m.(type) {
	case *Hello:
		return *v
	case *Welcome:
		return *v
	case *Reject:
		return *v
	case *GoAway:
		return *v
	case *Sites:
		return *v
	}
	return m
}

// controlWriteTimeout bounds one control write: a peer that does not read
// its control stream is dead to us.
const controlWriteTimeout = 10 * time.Second

// Control is the control stream of a session. Send is safe for concurrent
// use; Recv must be called from one goroutine.
type Control struct {
	conn net.Conn
	mu   sync.Mutex // serialises Send
}

// NewControl wraps the control stream.
func NewControl(c net.Conn) *Control { return &Control{conn: c} }

// Send writes one message.
func (c *Control) Send(m Message) error {
	b, err := EncodeMessage(m)
	if err != nil {
		return err
	}
	frame, err := AppendFrame(make([]byte, 0, 4+len(b)), b)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	_, err = c.conn.Write(frame)
	return err
}

// Recv reads the next message, waiting at most until deadline (zero: no
// limit other than the session's own liveness, which keepalives watch).
func (c *Control) Recv(deadline time.Time) (Message, error) {
	if deadline.IsZero() {
		// An explicit far deadline turns off the stream idle deadline: a
		// control stream is quiet for as long as nothing changes.
		deadline = time.Now().Add(100 * 365 * 24 * time.Hour)
	}
	c.conn.SetReadDeadline(deadline)
	b, err := ReadFrame(c.conn)
	switch {
	case errors.Is(err, ErrEmptyFrame), errors.Is(err, ErrFrameTooLarge), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	case err != nil:
		return nil, err
	}
	m, err := DecodeMessage(b)
	if err != nil && !errors.Is(err, ErrUnknownMessage) {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return m, err
}

// Close closes the control stream.
func (c *Control) Close() error { return c.conn.Close() }

// CloseWrite ends our side of the control stream: the peer reads EOF once
// it has read every message sent before. The agent uses it to say that a
// drained session may be closed.
func (c *Control) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CloseWrite(c.conn)
}

// RejectError is returned by ClientHandshake when the gateway refuses the
// agent.
type RejectError struct{ Reject Reject }

func (e *RejectError) Error() string {
	return fmt.Sprintf("gateway rejected the agent: %s: %s", e.Reject.Code, e.Reject.Message)
}

// ClientHandshake opens the control stream of sess, sends hello and waits
// for the gateway's welcome. A reject is returned as *RejectError.
func ClientHandshake(ctx context.Context, sess Session, h Hello) (*Control, Welcome, error) {
	st, err := sess.OpenStream(ctx)
	if err != nil {
		return nil, Welcome{}, fmt.Errorf("open control stream: %w", err)
	}
	c := NewControl(st)
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if h.Protocol == 0 {
		h.Protocol = ProtocolVersion
	}
	if err := c.Send(h); err != nil {
		st.Close()
		return nil, Welcome{}, fmt.Errorf("send hello: %w", err)
	}
	dl, _ := ctx.Deadline()
	m, err := c.Recv(dl)
	if err != nil {
		st.Close()
		return nil, Welcome{}, fmt.Errorf("wait for welcome: %w", err)
	}
	switch m := m.(type) {
	case Welcome:
		if !stop() {
			st.Close()
			return nil, Welcome{}, ctx.Err()
		}
		st.SetDeadline(time.Time{})
		return c, m, nil
	case Reject:
		st.Close()
		return nil, Welcome{}, &RejectError{Reject: m}
	default:
		st.Close()
		return nil, Welcome{}, fmt.Errorf("wait for welcome: got %s", m.messageType())
	}
}

// ServerHandshake accepts the control stream of sess and reads the hello.
// The caller authenticates it and answers with Welcome or Reject.
func ServerHandshake(ctx context.Context, sess Session) (*Control, Hello, error) {
	st, err := sess.AcceptStream(ctx)
	if err != nil {
		return nil, Hello{}, fmt.Errorf("accept control stream: %w", err)
	}
	c := NewControl(st)
	dl, _ := ctx.Deadline()
	m, err := c.Recv(dl)
	if err != nil {
		st.Close()
		return nil, Hello{}, fmt.Errorf("read hello: %w", err)
	}
	h, ok := m.(Hello)
	if !ok {
		st.Close()
		return nil, Hello{}, fmt.Errorf("read hello: got %s", m.messageType())
	}
	st.SetReadDeadline(time.Time{})
	return c, h, nil
}
