package sessiontest

import (
	"context"
	"net"
	"sync"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// MemPair returns two connected sessions in memory, each stream a
// net.Pipe: no socket, no timer, so that tests of what runs on top of a
// session can run in a testing/synctest bubble, where synctest.Wait
// shows that nothing more will happen. OpenStream waits until the peer
// accepts, as a transport out of stream credit does.
func MemPair() (dialled, accepted tunnel.Session) {
	a, b := newMem(), newMem()
	a.peer, b.peer = b, a
	return a, b
}

// memSession is one side of a MemPair.
type memSession struct {
	peer   *memSession
	accept chan net.Conn // streams the peer opened, taken by AcceptStream
	done   chan struct{}
	once   sync.Once

	mu    sync.Mutex // guards conns
	conns []net.Conn // every stream end of this side, closed with it
}

var _ tunnel.Session = (*memSession)(nil)

func newMem() *memSession {
	return &memSession{accept: make(chan net.Conn), done: make(chan struct{})}
}

func (s *memSession) OpenStream(ctx context.Context) (net.Conn, error) {
	mine, theirs := net.Pipe()
	select {
	case s.peer.accept <- theirs:
		s.peer.keep(theirs)
		s.keep(mine)
		return mine, nil
	case <-ctx.Done():
	case <-s.done: // closed with the peer's too
	}
	return nil, s.why(ctx)
}

func (s *memSession) AcceptStream(ctx context.Context) (net.Conn, error) {
	select {
	case c := <-s.accept:
		return c, nil
	case <-ctx.Done():
	case <-s.done:
	}
	return nil, s.why(ctx)
}

// why says why a wait on ctx or the session ended.
func (s *memSession) why(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return net.ErrClosed
}

func (s *memSession) keep(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, c)
}

// Close ends both sides, as a transport's close reaches the peer.
func (s *memSession) Close() error {
	s.end()
	s.peer.end()
	return nil
}

func (s *memSession) end() {
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
}

func (s *memSession) Done() <-chan struct{} { return s.done }
func (s *memSession) Transport() string     { return "memory" }
func (s *memSession) LocalAddr() net.Addr   { return memAddr{} }
func (s *memSession) RemoteAddr() net.Addr  { return memAddr{} }

type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return "memory" }
