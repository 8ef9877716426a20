package agent

import (
	"errors"
	"log/slog"
	"time"

	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/internal/clip"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// failure is how an attempt to reach the gateway failed, in the words of
// `oxbroker check` (agent/diag): what the log line says happened, then
// the cause and the fix.
type failure struct {
	msg string
	diag.Words
}

// repeatLasting is how often a lasting failure (diag.Words.Lasting) is
// logged again while it lasts, with the count of the attempts in between.
const repeatLasting = 5 * time.Minute

// explainEnd words how an attempt of g to reach ep ended after took;
// welcomed says whether the gateway had accepted the session. It returns
// nil for the ends that are no failure (a goaway, a gateway that is
// shutting down), which are logged where they happen.
func explainEnd(g *generation, ep endpoint, welcomed bool, took time.Duration, err error) *failure {
	var rej *tunnel.RejectError
	switch {
	case err == nil, errors.Is(err, errGoAway):
		return nil
	case errors.As(err, &rej) && rej.Reject.Code == tunnel.RejectShutdown:
		return nil
	case errors.As(err, &rej) && rej.Reject.Code == tunnel.RejectUnauthorized:
		return &failure{"tunnel down: the gateway refused the broker id or token", diag.Rejected(g.set.broker, rej.Reject)}
	case errors.As(err, &rej):
		return &failure{"tunnel down: the gateway refused the session", diag.Rejected(g.set.broker, rej.Reject)}
	case welcomed:
		return &failure{"tunnel down: the session ended", diag.Ended(ep.name, err)}
	}
	return &failure{"tunnel down: cannot reach the gateway", diag.GatewayTarget(g.set.gw, ep.name).Explain(err, took)}
}

// report logs f, the failure of one of g's connections, whose next
// attempt is in wait. A lasting failure is an error logged once per cause,
// then at most every repeatLasting with the count of those held back;
// retrying cannot mend it, so each attempt is only a debug line. Any other
// failure is a warning at each attempt, which the backoff spaces out. The
// failures of a pending generation (a reload's settings, while the old
// ones serve) are debug lines: watchSwitch says what matters of them.
func (a *Agent) report(log *slog.Logger, g *generation, f *failure, err error, wait time.Duration) {
	g.noteFailure(f)
	a.mu.Lock()
	pending := a.pending == g
	a.mu.Unlock()
	in := wait.Round(time.Millisecond).String()
	switch {
	case pending:
		log.Debug(f.msg+"; the previous settings keep serving", "cause", f.Cause, "fix", f.Fix, "err", err, "retry_in", in)
	case f.Lasting:
		a.lastingLines.Log(log, slog.LevelError, f.msg+"|"+f.Cause, f.msg, "cause", f.Cause, "fix", f.Fix, "err", err, "retry_in", in)
		log.Debug("reconnecting", "in", in)
	default:
		log.Warn(f.msg+"; reconnecting", "in", in, "cause", f.Cause, "fix", f.Fix, "err", err)
	}
}

// problemLine is a failure's cause and fix as one line of /readyz and
// the service status: the cause may quote a peer (a certificate's names).
func problemLine(cause, fix string) string { return clip.Line(cause+" Fix: "+fix, 1024) }

// gatewayProblem is why no session of the serving generation is up, in
// the check's words; nil when one is, or no attempt has failed yet.
func (a *Agent) gatewayProblem() *failure {
	if a.live.Load() > 0 {
		return nil
	}
	a.mu.Lock()
	g := a.active
	a.mu.Unlock()
	return g.lastFailure()
}
