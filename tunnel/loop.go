package tunnel

import (
	"errors"
	"io"
	"sync"
	"time"
)

// ControlLoop owns the control stream of a session after the handshake:
// one goroutine reads it and delivers what the two sides act on, the way
// derp's per-client loop or frp's message dispatcher do, so that neither
// side reads the stream itself. Both sides use it the same way:
//
//   - GoAway delivers the peer's first goaway (a drain, spec.md);
//   - Handlers, given at StartControl, see each goaway and sites message
//     in the reader's goroutine, in the order they came (the gateway
//     withdraws a draining session before it reads a later site list);
//   - Acknowledged is closed when the peer half-closes its side of the
//     stream: after a goaway, the drain acknowledgement of spec.md
//     ("Closing a session gracefully");
//   - Done is closed when the reader has ended, for whatever reason, and
//     Err says why.
//
// A bad frame (ErrProtocol) closes the whole session at once, as spec.md
// says; an unknown message type is ignored. Send and CloseWrite write to
// the stream; they are safe for concurrent use.
type ControlLoop struct {
	ctrl *Control
	sess Session

	goaway chan GoAway    // buffered 1: the first goaway
	acked  chan struct{}  // closed at EOF from the peer
	done   chan struct{}  // closed when the reader ends
	err    error          // why it ended; read after done
	ackW   sync.Once      // our half-close
	closeS sync.Once      // closing sess on a bad frame
	h      Handlers       // called from the reader goroutine
	wg     sync.WaitGroup // the reader
}

// Handlers are called in a ControlLoop's reader goroutine, one message at
// a time, in the order the peer sent them; a nil handler ignores its
// messages. They must not block for long: the next message waits.
type Handlers struct {
	GoAway func(GoAway)
	Sites  func(Sites)
	// BadFrame is called with the error of a bad frame (ErrProtocol)
	// just before the loop closes the session, so that its count and log
	// line come before anything the close sets off.
	BadFrame func(error)
}

// StartControl starts the reader of ctrl, the control stream of sess that
// ClientHandshake or ServerHandshake returned.
func StartControl(sess Session, ctrl *Control, h Handlers) *ControlLoop {
	l := &ControlLoop{
		ctrl:   ctrl,
		sess:   sess,
		goaway: make(chan GoAway, 1),
		acked:  make(chan struct{}),
		done:   make(chan struct{}),
		h:      h,
	}
	l.wg.Add(1)
	go l.read()
	return l
}

func (l *ControlLoop) read() {
	defer l.wg.Done()
	defer close(l.done)
	for {
		m, err := l.ctrl.Recv(time.Time{})
		switch {
		case errors.Is(err, ErrUnknownMessage):
			continue // forward compatibility (spec.md)
		case errors.Is(err, io.EOF):
			// The peer half-closed: after a goaway it will open no
			// stream more (gateway) or has finished (agent).
			close(l.acked)
			return
		case errors.Is(err, ErrProtocol):
			l.err = err
			if l.h.BadFrame != nil {
				l.h.BadFrame(err)
			}
			l.closeS.Do(func() { l.sess.Close() })
			return
		case err != nil:
			l.err = err // the session ended under the reader
			return
		}
		switch m := m.(type) {
		case GoAway:
			if l.h.GoAway != nil {
				l.h.GoAway(m)
			}
			select {
			case l.goaway <- m:
			default: // the first is the one that counts
			}
		case Sites:
			if l.h.Sites != nil {
				l.h.Sites(m)
			}
		}
	}
}

// GoAway delivers the peer's first goaway.
func (l *ControlLoop) GoAway() <-chan GoAway { return l.goaway }

// Acknowledged is closed once the reader has read the end of the control
// stream: the peer half-closed it (over yamux, a session that ends reads
// the same way).
func (l *ControlLoop) Acknowledged() <-chan struct{} { return l.acked }

// Done is closed once the reader has ended: the peer half-closed, the
// session died, or the peer sent a bad frame (and the session is closed).
func (l *ControlLoop) Done() <-chan struct{} { return l.done }

// Err says why the reader ended, once Done is closed: nil when the peer
// half-closed the stream, an error wrapping ErrProtocol for a bad frame,
// or the error the session ended with.
func (l *ControlLoop) Err() error {
	<-l.done
	return l.err
}

// BadFrame reports whether the reader ended on a bad frame from the peer.
func (l *ControlLoop) BadFrame() bool { return errors.Is(l.Err(), ErrProtocol) }

// Send writes one message to the peer.
func (l *ControlLoop) Send(m Message) error { return l.ctrl.Send(m) }

// CloseWrite half-closes our side of the control stream, once: the
// gateway's acknowledgement of a drain, the agent's last word.
func (l *ControlLoop) CloseWrite() {
	l.ackW.Do(func() { l.ctrl.CloseWrite() })
}

// Wait waits for the reader to end. Its owner closes the session first
// (or the peer half-closes), then waits.
func (l *ControlLoop) Wait() { l.wg.Wait() }
