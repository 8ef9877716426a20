package proxy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/netfail"
)

// handleError is the ReverseProxy's ErrorHandler: it answers a request
// that could not be forwarded, or whose response headers never came.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	ex, ok := w.(*exchange)
	if !ok { // not reached: ServeHTTP always passes an exchange
		ex = &exchange{StatusRecorder: brokerhttp.StatusRecorder{ResponseWriter: w}}
	}
	ex.cause = err
	code, msg := p.classify(r.Context(), err, ex.body.Err())
	if code == "" {
		ex.canceled = true
		p.log.Debug("caller went away before Jira answered", "request_id", ex.requestID)
		return
	}
	p.refuse(ex, code, msg)
}

// classify maps a failed request to Jira to the contract's error code and
// a message for the caller. It is the one place where failures get their
// codes. ctx is the request's context and bodyErr the first error reading
// the request body, if any. An empty code means the caller went away and
// nobody is left to answer.
//
// Messages are composed here from the error's kind and from error texts
// that carry no secret (addresses, certificate names, system errors); they
// go through scrub all the same.
func (p *Proxy) classify(ctx context.Context, err, bodyErr error) (brokerhttp.Code, string) {
	// A stalled body is cut by the server (brokerhttp.GuardBodies), which
	// cancels the request's context too: the caller is still there.
	var stalled *brokerhttp.StalledError
	if errors.As(bodyErr, &stalled) {
		return brokerhttp.BadRequest, "reading the request body failed: " + stalled.Error()
	}
	switch ctx.Err() {
	case context.Canceled:
		return "", ""
	case context.DeadlineExceeded:
		return brokerhttp.UpstreamTimeout, fmt.Sprintf("Jira at %s did not answer before the request's deadline", p.hostport)
	}

	var unreadable *unreadableEncodingError
	if errors.As(err, &unreadable) {
		return brokerhttp.UpstreamUnreachable, unreadable.Error()
	}

	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) || errors.As(bodyErr, &tooLarge) {
		return brokerhttp.TooLarge, p.tooLargeMessage()
	}
	if bodyErr != nil {
		return brokerhttp.BadRequest, "reading the request body failed: " + p.scrub(netfail.RootCause(bodyErr).Error())
	}

	f := netfail.Classify(err)
	if f.Kind.TLS() {
		return brokerhttp.UpstreamTLS, p.tlsMessage(f)
	}
	unreachable := func(cause string) (brokerhttp.Code, string) {
		return brokerhttp.UpstreamUnreachable, fmt.Sprintf("cannot reach Jira at %s: %s", p.hostport, p.scrub(cause))
	}
	switch {
	case f.Kind == netfail.NoSuchHost:
		return unreachable(fmt.Sprintf("DNS lookup of %s: no such host", f.Host))
	case f.Kind.DNS():
		return unreachable(fmt.Sprintf("DNS lookup of %s failed: %s", f.Host, f.Reason))
	case f.Op == "dial" && f.Kind.TimedOut():
		return unreachable("connection timed out")
	case f.Kind == netfail.ProxyFailed:
		return unreachable("through the proxy: " + f.Reason)
	case f.Op != "" && !f.Kind.TimedOut():
		// Refused, reset, unreachable network: the system's words.
		return unreachable(f.Reason)
	case f.Kind == netfail.Deadline:
		return brokerhttp.UpstreamTimeout, fmt.Sprintf("Jira at %s did not answer before the request's deadline", p.hostport)
	case f.Kind == netfail.Timeout:
		// Most often the transport's ResponseHeaderTimeout; also a TLS
		// handshake that did not finish in time.
		return brokerhttp.UpstreamTimeout, fmt.Sprintf("Jira at %s did not answer in time (timeout %s): %s",
			p.hostport, p.timeout, p.scrub(f.Reason))
	case f.Kind == netfail.Closed:
		return unreachable("Jira closed the connection without answering")
	}
	return brokerhttp.UpstreamUnreachable, fmt.Sprintf("request to Jira at %s failed: %s", p.hostport, p.scrub(f.Reason))
}

// tlsMessage words a TLS failure for upstream_tls, with a hint at the
// setting that fixes it.
func (p *Proxy) tlsMessage(f netfail.Failure) string {
	caHint := "add the CA that signed it to tls.ca_file"
	if p.caFile != "" {
		caHint = fmt.Sprintf("check that tls.ca_file (%s) holds the CA that signed it", p.caFile)
	}
	switch f.Kind {
	case netfail.UnknownAuthority:
		return fmt.Sprintf("Jira's certificate at %s is signed by an unknown authority (%s); %s",
			p.hostport, describeCert(f.Cert), caHint)
	case netfail.WrongName:
		return fmt.Sprintf("Jira's certificate is not valid for %s (%s); use a url with a name the certificate holds",
			f.Host, p.scrub(f.Reason))
	case netfail.Expired:
		return fmt.Sprintf("Jira's certificate at %s has expired or is not yet valid (%s)", p.hostport, describeCert(f.Cert))
	case netfail.BadCertificate:
		return fmt.Sprintf("Jira's certificate at %s is invalid: %s; %s", p.hostport, p.scrub(f.Reason), caHint)
	case netfail.NoRoots:
		return fmt.Sprintf("no system root certificates to verify Jira at %s; set tls.ca_file", p.hostport)
	case netfail.Unverified:
		return fmt.Sprintf("Jira's certificate at %s failed verification: %s; %s", p.hostport, p.scrub(f.Reason), caHint)
	case netfail.NotTLS:
		return fmt.Sprintf("Jira at %s did not answer with TLS; should url start with http:// ?", p.hostport)
	}
	return fmt.Sprintf("TLS handshake with Jira at %s failed: %s", p.hostport, p.scrub(f.Reason))
}

// describeCert names a certificate for an error message.
func describeCert(c *x509.Certificate) string {
	if c == nil {
		return "no certificate"
	}
	return fmt.Sprintf("subject %q, issuer %q", c.Subject.String(), c.Issuer.String())
}

// scrub removes the site's credential, in every form the responses are
// scrubbed of, from s. Nothing that reaches a message or a log line
// should hold it; this is the last guard.
func (p *Proxy) scrub(s string) string { return p.creds.String(s, nil) }
