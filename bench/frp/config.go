package frp

import (
	"fmt"
	"net"
	"strings"
)

// The ways through frp that the benchmark measures.
const (
	// PathTCP is a tcp proxy over frp's default transport: TCP with
	// tcpMux (yamux) and TLS. The caller sends the Jira token itself.
	PathTCP = "tcp"
	// PathQUIC is the same tcp proxy over QUIC.
	PathQUIC = "quic"
	// PathHTTP is an http proxy on frps's vhost port, over the default
	// transport, that sets the Authorization header on frps's side
	// (requestHeaders.set): the credential is in frpc's config and frpc
	// hands it to frps.
	PathHTTP = "http"
)

// Paths lists the paths in the order the benchmark runs them.
var Paths = []string{PathTCP, PathQUIC, PathHTTP}

// Server is what frps is told.
type Server struct {
	Bind      string // TCP control port, also the QUIC port (UDP); host:port
	VhostHTTP string // the http proxies' port; host:port
	Token     string // auth.token, shared with frpc
	LogLevel  string
}

// Client is what frpc is told: one proxy named "jira" to Local.
type Client struct {
	Path     string // PathTCP, PathQUIC or PathHTTP
	Server   string // frps's Bind
	Token    string // auth.token
	Local    string // the stand-in; host:port
	Remote   string // PathTCP, PathQUIC: the port frps opens for callers; host:port
	Domain   string // PathHTTP: the host callers name (customDomains)
	SetAuth  string // PathHTTP: the Authorization value frps sets
	LogLevel string
}

// ServerConfig returns frps's TOML config: loopback only, logs on stdout.
func ServerConfig(s Server) ([]byte, error) {
	host, port, err := splitPort(s.Bind)
	if err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	_, vport, err := splitPort(s.VhostHTTP)
	if err != nil {
		return nil, fmt.Errorf("vhost http: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "bindAddr = %s\n", quote(host))
	fmt.Fprintf(&b, "bindPort = %s\n", port)
	fmt.Fprintf(&b, "quicBindPort = %s\n", port)
	fmt.Fprintf(&b, "vhostHTTPPort = %s\n", vport)
	writeAuthLog(&b, s.Token, s.LogLevel)
	return []byte(b.String()), nil
}

// writeAuthLog writes what frps and frpc share: the token they
// authenticate each other with, and logging to stdout without colours.
func writeAuthLog(b *strings.Builder, token, level string) {
	fmt.Fprintf(b, "auth.method = \"token\"\n")
	fmt.Fprintf(b, "auth.token = %s\n", quote(token))
	fmt.Fprintf(b, "log.to = \"console\"\n")
	fmt.Fprintf(b, "log.level = %s\n", quote(level))
	fmt.Fprintf(b, "log.disablePrintColor = true\n")
}

// ClientConfig returns frpc's TOML config. The transport is frp's default
// but for the protocol, which is named anyway, and TLS, which is the
// default (since v0.50) but written out so that the config says it.
func ClientConfig(c Client) ([]byte, error) {
	host, port, err := splitPort(c.Server)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	lhost, lport, err := splitPort(c.Local)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	protocol := "tcp"
	switch c.Path {
	case PathTCP, PathHTTP:
	case PathQUIC:
		protocol = "quic"
	default:
		return nil, fmt.Errorf("unknown frp path %q", c.Path)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "serverAddr = %s\n", quote(host))
	fmt.Fprintf(&b, "serverPort = %s\n", port)
	// frps may still be starting; frpc retries rather than exits.
	fmt.Fprintf(&b, "loginFailExit = false\n")
	fmt.Fprintf(&b, "transport.protocol = %s\n", quote(protocol))
	fmt.Fprintf(&b, "transport.tls.enable = true\n")
	writeAuthLog(&b, c.Token, c.LogLevel)
	fmt.Fprintf(&b, "\n[[proxies]]\nname = \"jira\"\n")
	fmt.Fprintf(&b, "localIP = %s\nlocalPort = %s\n", quote(lhost), lport)
	if c.Path == PathHTTP {
		if c.Domain == "" || c.SetAuth == "" {
			return nil, fmt.Errorf("the http path needs a domain and the Authorization to set")
		}
		fmt.Fprintf(&b, "type = \"http\"\n")
		fmt.Fprintf(&b, "customDomains = [%s]\n", quote(c.Domain))
		fmt.Fprintf(&b, "requestHeaders.set.Authorization = %s\n", quote(c.SetAuth))
		return []byte(b.String()), nil
	}
	_, rport, err := splitPort(c.Remote)
	if err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	fmt.Fprintf(&b, "type = \"tcp\"\nremotePort = %s\n", rport)
	return []byte(b.String()), nil
}

func splitPort(hostport string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(hostport)
	if err == nil && (port == "" || port == "0") {
		err = fmt.Errorf("%q: no port", hostport)
	}
	return host, port, err
}

// quote returns s as a TOML basic string. The benchmark's values are
// addresses, tokens and log levels; anything TOML would need to escape
// beyond a quote or a backslash is written as a \u escape.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
