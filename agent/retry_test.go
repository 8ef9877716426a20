package agent

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// TestRepeatedGoAwayBacksOff: a gateway that sends goaway right after
// each welcome is dialled ever more rarely, not in a loop: in ten
// minutes (of synctest's clock), a few dozen dials rather than one per
// round trip. A single goaway after a stable session is still followed by
// a dial at once (a restarting gateway), and so is one after the loop
// once a session has stayed up.
func TestRepeatedGoAwayBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRetry()
		const session = 20 * time.Millisecond // welcome, then goaway at once
		start := time.Now()
		dials := 0
		for time.Since(start) < 10*time.Minute && dials < 100_000 {
			dials++
			time.Sleep(session)
			time.Sleep(r.after(true, session, errGoAway))
		}
		t.Logf("dials in 10 minutes of goaway after welcome: %d", dials)
		// 1 at once, 8 quick, then full jitter up to 30 s: about 55 on
		// average; a dial per round trip would be 30,000.
		if dials > 150 {
			t.Errorf("%d dials in 10 minutes, want at most 150 (the backoff reaches 30 s)", dials)
		}
		// A session that stays up ends the episode: the next goaway is a
		// restart again, dialled at once.
		if d := r.after(true, tunnel.StableAfter+time.Second, errGoAway); d != 0 {
			t.Errorf("a goaway after a stable session: waits %s, want 0", d)
		}
		if d := r.after(true, session, errGoAway); d > quickWait(0) {
			t.Errorf("a second goaway: waits %s, want a quick retry (at most %s)", d, quickWait(0))
		}
		// A session that ends otherwise breaks the row (the fault suite
		// cycles sessions so, alternating goaway and a cut).
		r.after(true, session, errors.New("session closed by the gateway or the network"))
		if d := r.after(true, session, errGoAway); d != 0 {
			t.Errorf("a goaway after a session that ended otherwise: waits %s, want 0", d)
		}
	})
}
