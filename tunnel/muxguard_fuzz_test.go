package tunnel

import (
	"errors"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// FuzzFrameGuard feeds the yamux frame guard arbitrary bytes from a peer,
// in arbitrary pieces: it must never panic, and its verdict (the limit
// gone over, or none) and its place in the stream must not depend on how
// the bytes were cut, since TCP and TLS cut them anyhow.
func FuzzFrameGuard(f *testing.F) {
	f.Add(append(tunneltest.MuxHeader(typePing, flagSYN, 0, 1), tunneltest.MuxHeader(typeData, flagSYN, 1, 3)...), uint8(1), false)
	f.Add(append(tunneltest.MuxHeader(typeData, flagSYN, 2, 0), tunneltest.MuxHeader(typeWindowUpdate, 0, 9, 0)...), uint8(5), true)
	f.Add(append(append(tunneltest.MuxHeader(typeData, flagSYN, 1, 4), 'a', 'b', 'c', 'd'), tunneltest.MuxHeader(typeData, 0, 1, 2)...), uint8(7), false)
	f.Fuzz(func(t *testing.T, data []byte, piece uint8, client bool) {
		lim := yamuxGuardLimits(Options{KeepAlive: DefaultKeepAlive, MaxIncomingStreams: 2}.withDefaults(), client, nil)
		clock := time.Unix(1e9, 0)
		now := func() time.Time { return clock }
		whole, cut := newFrameGuard(lim), newFrameGuard(lim)
		whole.now, cut.now = now, now
		werr := whole.scan(data)
		var cerr error
		n := max(int(piece), 1)
		for b := data; len(b) > 0 && cerr == nil; {
			k := min(n, len(b))
			cerr = cut.scan(b[:k])
			b = b[k:]
		}
		var wl, cl *LimitError
		errors.As(werr, &wl)
		errors.As(cerr, &cl)
		if (werr == nil) != (cerr == nil) || (wl != nil) != (cl != nil) || (wl != nil && wl.Limit != cl.Limit) {
			t.Fatalf("whole: %v; in pieces of %d: %v", werr, n, cerr)
		}
		if werr == nil && (whole.have != cut.have || whole.body != cut.body || whole.opened != cut.opened || whole.lastPeerID != cut.lastPeerID) {
			t.Fatalf("state differs: whole have=%d body=%d opened=%d last=%d; pieces have=%d body=%d opened=%d last=%d",
				whole.have, whole.body, whole.opened, whole.lastPeerID, cut.have, cut.body, cut.opened, cut.lastPeerID)
		}
	})
}
