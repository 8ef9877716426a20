package proxy

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/clip"
)

// exchange is the ResponseWriter the Proxy hands on: it records what the
// audit line needs (the status and bytes through the project's one status
// recorder), and carries the request's state to handleError, which
// ReverseProxy calls with it.
type exchange struct {
	brokerhttp.StatusRecorder

	start     time.Time
	requestID string
	// path is the path for the audit line of a refused request: the
	// decoded path once checked, the raw path of a malformed one. An
	// allowed request is logged by its template and operation instead,
	// since its path can carry user data (issue keys, account ids).
	path      string
	template  string
	operation string

	// Set in the handler's goroutine only.
	code     brokerhttp.Code // a broker error, if one was answered
	reason   string          // why it was answered, without the caller's path (Call.Reason)
	cause    error           // why the upstream request failed
	canceled bool            // the caller went away

	// links rewrites the answer's links to the call's public base; nil
	// when they are not rewritten. replaced counts what the proxy changed
	// in the answer, by rule class (classCredential, classLink).
	links    *links
	replaced [2]int

	// body is the request body, counted, with its first read error, so
	// that handleError can tell a body that broke (too large, caller
	// gone, bad chunking) from Jira failing.
	body brokerhttp.TrackedBody
}

// Observer is told about every request a Proxy finished: the status sent
// (0 if the caller went away first), the broker error code if the broker
// answered itself, and the time taken. It is called concurrently.
type Observer interface {
	ObserveRequest(site string, status int, code brokerhttp.Code, d time.Duration)
}

// Call is one finished request as the agent's status page lists it: what
// the audit line says, less the path of a refused request. It never holds
// a path (issue keys, account ids), a query (JQL), a header or a body.
type Call struct {
	Start  time.Time
	Site   string
	Method string // as the caller sent it, clipped
	// Operation and Template are the Jira operation and the path template
	// the request matched; both empty for a path the allowlist does not
	// know.
	Operation string
	Template  string
	Status    int             // sent; 0 if the caller went away first
	Code      brokerhttp.Code // the broker's error code, if the broker answered itself
	// Reason says why the broker answered itself (Code is set): the
	// allowlist's reason, or the error message, never the caller's path.
	Reason    string
	Duration  time.Duration
	BytesIn   int64
	BytesOut  int64
	RequestID string // the gateway's, clipped
	Canceled  bool   // the caller went away
}

// CallObserver is told about every finished request with its details;
// an Observer may implement it. It is called concurrently.
type CallObserver interface {
	ObserveCall(Call)
}

// call is what the exchange tells a CallObserver.
func (ex *exchange) call(site, method string, d time.Duration) Call {
	return Call{
		Start: ex.start, Site: site, Method: clip.String(method, 16),
		Operation: ex.operation, Template: ex.template,
		Status: ex.Status, Code: ex.code, Reason: ex.reason, Duration: d,
		BytesIn: ex.body.BytesRead(), BytesOut: ex.Bytes,
		RequestID: clip.String(ex.requestID, 64), Canceled: ex.canceled,
	}
}

// maxLoggedPath bounds the length of a refused raw path in the audit log.
const maxLoggedPath = 256

// audit writes the request's audit line. aborted is true when the
// handler is unwinding from a panic, which ReverseProxy raises
// (http.ErrAbortHandler) when Jira's response breaks off mid-body.
func (p *Proxy) audit(r *http.Request, ex *exchange, aborted bool) {
	if p.observer != nil {
		d := time.Since(ex.start)
		p.observer.ObserveRequest(p.site, ex.Status, ex.code, d)
		if o, ok := p.observer.(CallObserver); ok {
			o.ObserveCall(ex.call(p.site, r.Method, d))
		}
	}
	ctx := r.Context()
	p.reportFiltered(ctx, ex)
	if !p.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 15)
	attrs = append(attrs,
		slog.String("request_id", ex.requestID),
		slog.String("method", r.Method),
	)
	if ex.template != "" {
		attrs = append(attrs, slog.String("path", ex.template), slog.String("operation", ex.operation))
	} else {
		path := ex.path
		if len(path) > maxLoggedPath {
			path = path[:maxLoggedPath] + "..."
		}
		attrs = append(attrs, slog.String("path", path))
	}
	attrs = append(attrs, slog.Int("status", ex.Status))
	if ex.code != "" {
		attrs = append(attrs, slog.String("code", string(ex.code)))
	}
	attrs = append(attrs,
		slog.Int64("bytes_in", ex.body.BytesRead()),
		slog.Int64("bytes_out", ex.Bytes),
		slog.Duration("duration", time.Since(ex.start)),
	)
	if n := ex.replaced[classLink]; n > 0 {
		attrs = append(attrs, slog.Int("links_rewritten", n))
	}
	if n := ex.replaced[classCredential]; n > 0 {
		attrs = append(attrs, slog.Int("credentials_removed", n))
	}
	if ex.canceled {
		attrs = append(attrs, slog.Bool("canceled", true))
	}
	if aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	if ex.cause != nil {
		attrs = append(attrs, slog.String("err", p.scrub(ex.cause.Error())))
	}
	p.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}
