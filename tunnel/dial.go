package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"
)

// Transport choices of a Dialer.
const (
	DialAuto = "auto"
	DialQUIC = TransportQUIC
	DialTCP  = TransportTCP
)

// Dialer dials tunnel sessions to the gateway. It is safe for concurrent
// use; with Transport "auto" it remembers a QUIC failure for a while so
// that every reconnect does not pay the QUIC timeout again. The memory is
// one for the Dialer, whatever address it dials: QUIC is blocked by the
// network between the agent and the gateways (a firewall that drops UDP),
// which is the same for every gateway address, and a per-address memory
// would pay the timeout again at each new address a rolling restart
// brings.
type Dialer struct {
	// Transport is DialAuto, DialQUIC or DialTCP. A Proxy forces TCP.
	Transport string
	// TLS is the client TLS configuration (roots, server name). Dial sets
	// NextProtos and a minimum version on a copy.
	TLS *tls.Config
	// Proxy, if set, is an HTTP CONNECT proxy for the TCP transport.
	Proxy *url.URL
	// QUICTimeout bounds the QUIC attempt in auto mode before falling back
	// to TCP (default 4 s).
	QUICTimeout time.Duration
	// RetryQUICAfter is how long auto mode goes straight to TCP after a
	// QUIC attempt failed where TCP then worked (default 5 minutes).
	RetryQUICAfter time.Duration
	Options        Options

	mu       sync.Mutex // guards quicFail
	quicFail time.Time  // last QUIC failure in auto mode that TCP then got through
}

func (d *Dialer) tlsConfig() *tls.Config {
	c := d.TLS.Clone()
	if c == nil {
		c = &tls.Config{}
	}
	c.NextProtos = []string{ALPN}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// Dial opens a session to addr (host:port; UDP for QUIC, TCP otherwise).
func (d *Dialer) Dial(ctx context.Context, addr string) (Session, error) {
	return d.DialName(ctx, addr, "")
}

// DialName is Dial for one address of a name: it connects to addr, often
// an IP address the caller resolved a host name to, and checks the
// gateway's certificate against serverName, the host name. TLS.ServerName,
// when set, overrides both; an empty serverName means addr's host.
func (d *Dialer) DialName(ctx context.Context, addr, serverName string) (Session, error) {
	o := d.Options.withDefaults()
	tlsConf := d.tlsConfig()
	if tlsConf.ServerName == "" {
		tlsConf.ServerName = serverName
	}
	if tlsConf.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("gateway address %q: %w", addr, err)
		}
		tlsConf.ServerName = host
	}
	mode := d.Transport
	if d.Proxy != nil {
		mode = DialTCP
	}
	switch mode {
	case DialQUIC:
		return dialQUIC(ctx, addr, tlsConf, o)
	case DialTCP:
		return dialTCP(ctx, addr, tlsConf, d.Proxy, o)
	case DialAuto, "":
	default:
		return nil, fmt.Errorf("unknown transport %q", d.Transport)
	}

	if d.quicRecentlyFailed() {
		return dialTCP(ctx, addr, tlsConf, nil, o)
	}
	qt := d.QUICTimeout
	if qt <= 0 {
		qt = 4 * time.Second
	}
	qctx, cancel := context.WithTimeout(ctx, qt)
	qo := o
	qo.HandshakeTimeout = min(qo.HandshakeTimeout, qt)
	s, qerr := dialQUIC(qctx, addr, tlsConf, qo)
	cancel()
	if qerr == nil {
		return s, nil
	}
	if ctx.Err() != nil {
		return nil, qerr
	}
	s, terr := dialTCP(ctx, addr, tlsConf, nil, o)
	if terr != nil {
		// Neither transport reached addr: the gateway there is down, not
		// UDP blocked on the way, so QUIC stays first for the next dial.
		return nil, errors.Join(qerr, terr)
	}
	d.mu.Lock()
	d.quicFail = time.Now()
	d.mu.Unlock()
	return s, nil
}

func (d *Dialer) quicRecentlyFailed() bool {
	retry := d.RetryQUICAfter
	if retry <= 0 {
		retry = 5 * time.Minute
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.quicFail.IsZero() && time.Since(d.quicFail) < retry
}
