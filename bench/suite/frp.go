package suite

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/oxsecurity/oxbroker/bench/frp"
	"github.com/oxsecurity/oxbroker/bench/rig"
	"github.com/oxsecurity/oxbroker/gateway"
)

// throughFrp starts frps and frpc for path (frp.PathTCP, PathQUIC or
// PathHTTP) in front of the stand-in, measures the request figures
// through them exactly as through the broker, and stops them. On the tcp
// paths the caller sends the Jira token, as a caller of a raw tunnel
// must; on the http path frps sets it.
func (s *suite) throughFrp(ctx context.Context, bins frp.Binaries, path string) (*Figures, error) {
	bind, err := rig.FreeTunnelAddr() // frps's TCP and QUIC port
	if err != nil {
		return nil, err
	}
	vhost, err := rig.FreeAddr()
	if err != nil {
		return nil, err
	}
	remote, err := rig.FreeAddr()
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(s.jiraAt)
	token := gateway.NewToken()
	level := frpLogLevel(s.cfg.LogLevel)
	srvCfg, err := frp.ServerConfig(frp.Server{Bind: bind, VhostHTTP: vhost, Token: token, LogLevel: level})
	if err != nil {
		return nil, err
	}
	cliCfg, err := frp.ClientConfig(frp.Client{Path: path, Server: bind, Token: token, Local: s.jiraAt,
		Remote: remote, Domain: host, SetAuth: "Bearer " + s.rig.JiraToken, LogLevel: level})
	if err != nil {
		return nil, err
	}
	name := "frp-" + path
	srvPath, cliPath := s.path(name+"-frps.toml"), s.path(name+"-frpc.toml")
	for p, b := range map[string][]byte{srvPath: srvCfg, cliPath: cliCfg} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return nil, err
		}
	}
	frps, err := s.startProc(name+"-frps", bins.Frps, s.cfg.Env, "-c", srvPath)
	if err != nil {
		return nil, err
	}
	defer frps.stop()
	if err := waitTCP(ctx, frps, bind, 10*time.Second); err != nil {
		return nil, err
	}
	frpc, err := s.startProc(name+"-frpc", bins.Frpc, s.cfg.Env, "-c", cliPath)
	if err != nil {
		return nil, err
	}
	defer frpc.stop()

	ep := endpoint{name: "frp " + path, addr: remote, token: s.rig.JiraToken, host: s.jiraAt}
	if path == frp.PathHTTP {
		// No token: frps sets it. frps routes by the Host's name (its
		// port aside), which is the domain of frpc's proxy.
		ep = endpoint{name: "frp http", addr: vhost, host: s.jiraAt}
	}
	// frpc logs in and registers its proxy asynchronously; the proxy is
	// ready when the issue comes back through it as the stand-in serves it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.sameAnswer(ctx, ep)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: not serving after 20 s: %w (logs: %s, %s)", ep.name, err, frps.log.Name(), frpc.log.Name())
		}
		if err := pause(ctx, frpc, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	s.bulk.CloseIdleConnections() // the failed attempts' connections
	s.logf("%s: frps pid %d, frpc pid %d", ep.name, frps.pid(), frpc.pid())
	f, err := s.measure(ctx, ep, []*proc{frps, frpc})
	if err != nil {
		return nil, err
	}
	if err := s.bothSides(ep.name, f, frps, frpc); err != nil {
		return nil, err
	}
	return f, nil
}

// frpLogLevel maps the broker's log level to frp's (trace, debug, info,
// warn, error).
func frpLogLevel(level string) string {
	switch level {
	case "debug", "info", "warn", "error":
		return level
	}
	return "info"
}
