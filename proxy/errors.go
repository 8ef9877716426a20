package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/rootcause"
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
		return brokerhttp.BadRequest, "reading the request body failed: " + p.scrub(rootcause.Of(bodyErr).Error())
	}

	if code, msg := p.classifyTLS(err); code != "" {
		return code, msg
	}

	unreachable := func(cause string) (brokerhttp.Code, string) {
		return brokerhttp.UpstreamUnreachable, fmt.Sprintf("cannot reach Jira at %s: %s", p.hostport, p.scrub(cause))
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return unreachable(fmt.Sprintf("DNS lookup of %s: no such host", dnsErr.Name))
		}
		return unreachable(fmt.Sprintf("DNS lookup of %s failed: %s", dnsErr.Name, dnsErr.Err))
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		switch {
		case opErr.Op == "dial" && opErr.Timeout():
			return unreachable("connection timed out")
		case opErr.Op == "proxyconnect":
			return unreachable("through the proxy: " + rootcause.Of(opErr).Error())
		case !opErr.Timeout():
			// Refused, reset, unreachable network: the system's words.
			return unreachable(rootcause.Of(opErr).Error())
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return brokerhttp.UpstreamTimeout, fmt.Sprintf("Jira at %s did not answer before the request's deadline", p.hostport)
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		// Most often the transport's ResponseHeaderTimeout; also a TLS
		// handshake that did not finish in time.
		return brokerhttp.UpstreamTimeout, fmt.Sprintf("Jira at %s did not answer in time (timeout %s): %s",
			p.hostport, p.timeout, p.scrub(rootcause.Of(err).Error()))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return unreachable("Jira closed the connection without answering")
	}
	return brokerhttp.UpstreamUnreachable, fmt.Sprintf("request to Jira at %s failed: %s", p.hostport, p.scrub(rootcause.Of(err).Error()))
}

// classifyTLS maps TLS failures to upstream_tls, with a hint at the
// setting that fixes them. It returns "" for other errors.
func (p *Proxy) classifyTLS(err error) (brokerhttp.Code, string) {
	caHint := "add the CA that signed it to tls.ca_file"
	if p.caFile != "" {
		caHint = fmt.Sprintf("check that tls.ca_file (%s) holds the CA that signed it", p.caFile)
	}
	var (
		unknownCA  x509.UnknownAuthorityError
		hostname   x509.HostnameError
		invalid    x509.CertificateInvalidError
		noRoots    x509.SystemRootsError
		verify     *tls.CertificateVerificationError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		msg        string
		tlsFailure = true
	)
	switch {
	case errors.As(err, &unknownCA):
		msg = fmt.Sprintf("Jira's certificate at %s is signed by an unknown authority (%s); %s",
			p.hostport, describeCert(unknownCA.Cert), caHint)
	case errors.As(err, &hostname):
		msg = fmt.Sprintf("Jira's certificate is not valid for %s (%s); use a url with a name the certificate holds",
			hostname.Host, p.scrub(hostname.Error()))
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			msg = fmt.Sprintf("Jira's certificate at %s has expired or is not yet valid (%s)", p.hostport, describeCert(invalid.Cert))
		} else {
			msg = fmt.Sprintf("Jira's certificate at %s is invalid: %s; %s", p.hostport, p.scrub(invalid.Error()), caHint)
		}
	case errors.As(err, &noRoots):
		msg = fmt.Sprintf("no system root certificates to verify Jira at %s; set tls.ca_file", p.hostport)
	case errors.As(err, &verify):
		msg = fmt.Sprintf("Jira's certificate at %s failed verification: %s; %s", p.hostport, p.scrub(rootcause.Of(verify).Error()), caHint)
	case errors.As(err, &recordErr):
		msg = fmt.Sprintf("Jira at %s did not answer with TLS; should url start with http:// ?", p.hostport)
	case errors.As(err, &alertErr):
		msg = fmt.Sprintf("TLS handshake with Jira at %s failed: %s", p.hostport, p.scrub(alertErr.Error()))
	default:
		tlsFailure = false
	}
	if !tlsFailure {
		return "", ""
	}
	return brokerhttp.UpstreamTLS, msg
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
