// Package netfail sorts the errors of reaching a server — resolving its
// name, connecting, the TLS handshake, an HTTP proxy on the way — into the
// kinds a person can act on. It is the one classification of such errors:
// the proxy maps the kinds to the contract's error codes and messages, and
// `oxbroker check` (agent/diag) words them as a cause and a fix.
//
// It knows no setting and no peer; it only reads errors, with errors.Is
// and errors.As, never by their text.
package netfail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"
)

// Kind is what went wrong.
type Kind int

// The kinds, in the order Classify tries them.
const (
	Other Kind = iota // none of those below

	// The TLS handshake: the peer's certificate, or the peer itself.
	UnknownAuthority // the certificate is signed by a CA not trusted here
	WrongName        // the certificate is not valid for the name asked for
	Expired          // the certificate has expired or is not yet valid
	BadCertificate   // the certificate is invalid for another reason
	NoRoots          // no root certificates to verify with
	Unverified       // verification failed for another reason
	NotTLS           // the peer did not answer with TLS
	TLSAlert         // the peer ended the handshake with an alert

	// The name.
	NoSuchHost // DNS has no address for the name
	DNSTimeout // the DNS server did not answer in time
	DNSFailed  // any other DNS failure

	// The way there.
	ProxyFailed // net/http's CONNECT through the HTTP proxy failed ("proxyconnect")
	Refused     // the connection was refused
	NoRoute     // no route to the network or host
	Reset       // the peer reset the connection
	Deadline    // a context deadline passed
	Timeout     // a network timeout (an I/O deadline, a transport's own timeout)
	Canceled    // the context was cancelled
	Closed      // the peer closed the connection (EOF) before answering
)

// TLS reports whether k is a failure of the TLS handshake.
func (k Kind) TLS() bool { return k >= UnknownAuthority && k <= TLSAlert }

// DNS reports whether k is a failure to resolve a name.
func (k Kind) DNS() bool { return k >= NoSuchHost && k <= DNSFailed }

// TimedOut reports whether k is a deadline or a timeout.
func (k Kind) TimedOut() bool { return k == Deadline || k == Timeout }

// Failure is what Classify found.
type Failure struct {
	Kind Kind
	// Host is the name a DNS kind failed for, or the name the certificate
	// is not valid for (WrongName).
	Host string
	// Cert is the certificate at fault for the certificate kinds, nil when
	// the error does not say.
	Cert *x509.Certificate
	// Reason is the short words of the error of that kind: the DNS error
	// ("no such host"), the certificate error, the TLS alert, or else the
	// innermost error ("connection refused"). It may quote a server, so
	// whoever shows it to a caller scrubs it first.
	Reason string
	// Op is the operation of the net.OpError in the chain ("dial", "read",
	// "proxyconnect"), "" when there is none.
	Op string
}

// Classify sorts err. It returns Kind Other for nil.
func Classify(err error) Failure {
	if err == nil {
		return Failure{}
	}
	f := Failure{Reason: RootCause(err).Error()}
	var op *net.OpError
	if errors.As(err, &op) {
		f.Op = op.Op
	}
	if classifyTLS(err, &f) {
		return f
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		f.Host, f.Reason = dnsErr.Name, dnsErr.Err
		switch {
		case dnsErr.IsNotFound:
			f.Kind = NoSuchHost
		case dnsErr.IsTimeout, errors.Is(err, context.DeadlineExceeded):
			f.Kind = DNSTimeout
		default:
			f.Kind = DNSFailed
		}
		return f
	}
	var netErr net.Error
	switch {
	case f.Op == "proxyconnect":
		f.Kind = ProxyFailed
	case errors.Is(err, syscall.ECONNREFUSED):
		f.Kind = Refused
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		f.Kind = NoRoute
	case errors.Is(err, syscall.ECONNRESET):
		f.Kind = Reset
	case errors.Is(err, context.DeadlineExceeded):
		f.Kind = Deadline
	case errors.As(err, &netErr) && netErr.Timeout():
		f.Kind = Timeout
	case errors.Is(err, context.Canceled):
		f.Kind = Canceled
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		f.Kind = Closed
	}
	return f
}

// classifyTLS sets f for the TLS kinds and reports whether err is one.
func classifyTLS(err error, f *Failure) bool {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		noRoots  x509.SystemRootsError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	switch {
	case errors.As(err, &unknown):
		f.Kind, f.Cert, f.Reason = UnknownAuthority, unknown.Cert, unknown.Error()
	case errors.As(err, &hostname):
		f.Kind, f.Cert, f.Host, f.Reason = WrongName, hostname.Certificate, hostname.Host, hostname.Error()
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		f.Kind, f.Cert, f.Reason = Expired, invalid.Cert, invalid.Error()
	case errors.As(err, &invalid):
		f.Kind, f.Cert, f.Reason = BadCertificate, invalid.Cert, invalid.Error()
	case errors.As(err, &noRoots):
		f.Kind, f.Reason = NoRoots, noRoots.Error()
	case errors.As(err, &verify):
		f.Kind, f.Reason = Unverified, RootCause(verify).Error()
	case errors.As(err, &record):
		f.Kind, f.Reason = NotTLS, record.Error()
	case errors.As(err, &alert):
		f.Kind, f.Reason = TLSAlert, alert.Error()
	default:
		return false
	}
	return true
}

// RootCause returns the innermost error of err's Unwrap chain, whose text
// is the short cause ("connection refused") rather than the whole story.
func RootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}
