package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
)

// timeoutErr is a net.Error that timed out, like the transport's
// "timeout awaiting response headers".
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "net/http: timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	p, err := New(testSite("https://jira.acme.local/jira"), Options{Logger: testLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "jira.acme.local"}, Issuer: pkix.Name{CommonName: "Acme Root"}, DNSNames: []string{"other.acme.local"}}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()

	tests := []struct {
		name    string
		ctx     context.Context
		err     error
		bodyErr error
		code    brokerhttp.Code
		inMsg   string
	}{
		{"dns", nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "jira.acme.local", IsNotFound: true}},
			nil, brokerhttp.UpstreamUnreachable, "cannot reach Jira at jira.acme.local:443: DNS lookup of jira.acme.local: no such host"},
		{"dns server", nil, &net.DNSError{Err: "server misbehaving", Name: "jira.acme.local", IsTemporary: true},
			nil, brokerhttp.UpstreamUnreachable, "server misbehaving"},
		{"refused", nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
			nil, brokerhttp.UpstreamUnreachable, "cannot reach Jira at jira.acme.local:443: connection refused"},
		{"reset", nil, fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w",
			&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}),
			nil, brokerhttp.UpstreamUnreachable, "connection reset"},
		{"dial timeout", nil, &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}},
			nil, brokerhttp.UpstreamUnreachable, "connection timed out"},
		{"proxy", nil, &net.OpError{Op: "proxyconnect", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
			nil, brokerhttp.UpstreamUnreachable, "proxy"},
		{"unknown CA", nil, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{Cert: cert}},
			nil, brokerhttp.UpstreamTLS, "tls.ca_file"},
		{"hostname", nil, &tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: cert, Host: "jira.acme.local"}},
			nil, brokerhttp.UpstreamTLS, "not valid for jira.acme.local"},
		{"expired", nil, &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}},
			nil, brokerhttp.UpstreamTLS, "expired"},
		{"invalid", nil, x509.CertificateInvalidError{Cert: cert, Reason: x509.NotAuthorizedToSign},
			nil, brokerhttp.UpstreamTLS, "invalid"},
		{"verification", nil, &tls.CertificateVerificationError{Err: errors.New("x509: something")},
			nil, brokerhttp.UpstreamTLS, "failed verification"},
		{"not TLS", nil, tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"},
			nil, brokerhttp.UpstreamTLS, "http://"},
		{"alert", nil, tls.AlertError(40), nil, brokerhttp.UpstreamTLS, "handshake"},
		{"header timeout", nil, timeoutErr{}, nil, brokerhttp.UpstreamTimeout, "did not answer in time"},
		{"deadline", nil, fmt.Errorf("x: %w", context.DeadlineExceeded), nil, brokerhttp.UpstreamTimeout, "deadline"},
		{"request deadline", expired, context.DeadlineExceeded, nil, brokerhttp.UpstreamTimeout, "deadline"},
		{"too large", nil, &http.MaxBytesError{Limit: 10}, nil, brokerhttp.TooLarge, "max_body"},
		{"too large body", nil, errors.New("write error"), &http.MaxBytesError{Limit: 10}, brokerhttp.TooLarge, "max_body"},
		{"broken body", nil, io.ErrUnexpectedEOF, io.ErrUnexpectedEOF, brokerhttp.BadRequest, "request body"},
		{"eof", nil, fmt.Errorf("wrapped: %w", io.EOF), nil, brokerhttp.UpstreamUnreachable, "closed the connection"},
		{"other", nil, errors.New("something odd"), nil, brokerhttp.UpstreamUnreachable, "something odd"},
		{"token in cause", nil, errors.New("echo " + testToken), nil, brokerhttp.UpstreamUnreachable, "echo REDACTED"},
		{"unreadable encoding", nil, &unreadableEncodingError{encoding: "br"}, nil, brokerhttp.UpstreamUnreachable, `Content-Encoding "br"`},
		{"caller gone", canceled, context.Canceled, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			code, msg := p.classify(ctx, tt.err, tt.bodyErr)
			if code != tt.code {
				t.Errorf("code: got %q, want %q (message %q)", code, tt.code, msg)
			}
			if !strings.Contains(msg, tt.inMsg) {
				t.Errorf("message: got %q, want it to contain %q", msg, tt.inMsg)
			}
			if err := checkNoSecret("message", msg); err != nil {
				t.Error(err)
			}
		})
	}
}
