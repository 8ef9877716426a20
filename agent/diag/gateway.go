package diag

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"time"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/netfail"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// checkGateway checks the way to gateway.address and the broker's
// credentials, with the agent's own dialer.
func checkGateway(ctx context.Context, cfg *config.Agent, opts Options) []Result {
	g := cfg.Gateway
	addr := g.Address
	host, port, _ := net.SplitHostPort(addr)
	t := GatewayTarget(g, addr)
	c := &chain{ctx: ctx}

	d, dialerErr := opts.Dialer(g, tunnel.Options{})
	var proxyURL *url.URL
	if dialerErr == nil {
		proxyURL = d.Proxy
	}
	caFileFailed := func() outcome {
		return failed("gateway.ca_file", sentence("Cannot use "+dialerErr.Error()),
			"Set gateway.ca_file to a readable PEM file holding the CA that signed the gateway certificate, or remove it.")
	}
	transport := g.Transport
	if transport == "" {
		transport = config.TransportAuto
	}

	c.step("dns", dnsLimit, func(ctx context.Context) outcome {
		return checkDNS(ctx, host, proxyURL != nil, t)
	})

	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	c.step("tcp", dialLimit, func(ctx context.Context) outcome {
		if transport == config.TransportQUIC && proxyURL == nil {
			return skipped("transport is quic: the agent does not use TCP")
		}
		var o outcome
		if proxyURL != nil {
			conn, o = dialProxy(ctx, proxyURL, t)
		} else {
			conn, o = dialDirect(ctx, t)
		}
		return o
	})

	c.step("tls", tlsLimit, func(ctx context.Context) outcome {
		if dialerErr != nil {
			return caFileFailed()
		}
		if conn == nil {
			return skipped("checked by the QUIC handshake")
		}
		conf := d.TLS.Clone()
		conf.NextProtos = []string{tunnel.ALPN}
		if conf.ServerName == "" {
			conf.ServerName = host
		}
		tc := tls.Client(conn, conf)
		conn = tc
		if err := tc.HandshakeContext(ctx); err != nil {
			return failedWith("TLS with "+addr, t.Handshake(err))
		}
		st := tc.ConnectionState()
		if st.NegotiatedProtocol != tunnel.ALPN {
			return failed(certSummary(st),
				fmt.Sprintf("The server at %s is not an OX Broker gateway: it does not speak %s.", addr, tunnel.ALPN),
				"Check gateway.address: it must be the tunnel address OX gave you, not a web server.")
		}
		return passed("%s, verified (system roots%s)", certSummary(st), ifSet(g.CAFile, " + gateway.ca_file"))
	})
	if conn != nil {
		conn.Close()
		conn = nil
	}

	quicOK := false
	c.step("quic", quicLimit, func(ctx context.Context) outcome {
		switch {
		case proxyURL != nil:
			return skipped("a proxy is set (%s): the agent uses TCP through it", t.ProxyKey)
		case transport == config.TransportTCP:
			return skipped("transport is tcp")
		case dialerErr != nil:
			return caFileFailed()
		}
		limit := quicLimit
		if transport == config.TransportAuto {
			limit = quicAuto
		}
		qd := &tunnel.Dialer{Transport: tunnel.DialQUIC, TLS: d.TLS, Options: tunnel.Options{HandshakeTimeout: limit}}
		qctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		start := time.Now()
		s, err := qd.Dial(qctx, addr)
		if err == nil {
			s.Close()
			quicOK = true
			return passed("QUIC handshake with %s over UDP", addr)
		}
		cause := fmt.Sprintf("No QUIC handshake with %s after %s: %s.", addr, time.Since(start).Round(100*time.Millisecond), trimPeriod(netfail.RootCause(err).Error()))
		if w, ok := t.certificate(netfail.Classify(err)); ok {
			if transport == config.TransportQUIC {
				return failedWith("TLS with "+addr, w)
			}
			cause = w.Cause
		}
		if transport == config.TransportAuto {
			return warned("UDP to the gateway seems blocked; the agent will use TCP (transport: tcp works)", cause,
				"Nothing is required; to skip the QUIC attempt, set gateway.transport: tcp, or allow outbound UDP to "+addr+" for QUIC.")
		}
		return failed("QUIC to "+addr, cause,
			"Allow outbound UDP to port "+port+" of the gateway, or set gateway.transport: auto so the agent falls back to TCP.")
	})

	c.step("auth", authLimit, func(ctx context.Context) outcome {
		ad := &tunnel.Dialer{Transport: transport, TLS: d.TLS, Proxy: d.Proxy}
		if transport == config.TransportAuto && !quicOK {
			ad.Transport = tunnel.DialTCP // as the agent does after a QUIC failure
		}
		return checkAuth(ctx, ad, cfg, opts)
	})
	return c.results
}

// checkAuth opens a tunnel session with ad and says whether the gateway
// accepts the broker's id and token.
func checkAuth(ctx context.Context, ad *tunnel.Dialer, cfg *config.Agent, opts Options) outcome {
	addr := cfg.Gateway.Address
	s, err := ad.Dial(ctx, addr)
	if err != nil {
		return failed("dial "+addr, sentence("Cannot open a tunnel session: "+trimPeriod(netfail.RootCause(err).Error())),
			"Run the check again; if it keeps failing while the checks above pass, report it to OX.")
	}
	defer s.Close()
	hostname, _ := os.Hostname()
	hello := tunnel.Hello{
		Protocol:     tunnel.ProtocolVersion,
		BrokerID:     cfg.Broker.ID,
		Token:        cfg.Broker.Token.Reveal(),
		AgentID:      opts.AgentID,
		AgentVersion: opts.Version,
		Hostname:     hostname,
		OS:           runtime.GOOS + "/" + runtime.GOARCH,
		// No sites: the gateway must not route requests to this
		// short-lived session.
		Sites: []tunnel.SiteInfo{},
	}
	ctrl, welcome, err := tunnel.ClientHandshake(ctx, s, hello)
	var rej *tunnel.RejectError
	switch {
	case errors.As(err, &rej) && rej.Reject.Code == tunnel.RejectShutdown:
		return warned("broker id "+cfg.Broker.ID, "The gateway is restarting and did not take the session.",
			"Run the check again in a minute.")
	case errors.As(err, &rej):
		return failedWith("broker id "+cfg.Broker.ID, Rejected(cfg.Broker.ID, rej.Reject))
	case err != nil:
		return failed("broker id "+cfg.Broker.ID, sentence("The gateway did not answer the hello: "+trimPeriod(netfail.RootCause(err).Error())),
			"Run the check again; if it keeps failing while the checks above pass, report it to OX.")
	}
	ctrl.Close()
	return passed("broker %s accepted over %s (gateway %s)", cfg.Broker.ID, s.Transport(), ifEmpty(welcome.GatewayVersion, "version unknown"))
}
