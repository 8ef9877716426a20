// Package rig prepares a benchmark setup on loopback: certificates,
// tokens, free ports, and the configs of the gateway and the agent, the
// same for the real processes of `make bench` and the in-process
// benchmarks of bench/inproc.
package rig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/internal/freeport"
	"github.com/oxsecurity/oxbroker/internal/gatewayyaml"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// Names of the setup.
const (
	BrokerID = "bench"
	Site     = "jira"
)

// Rig is one setup: a directory holding its files, and its secrets.
type Rig struct {
	Dir            string
	Certs          devcert.Files
	BrokerToken    string
	ConnectorToken string
	JiraToken      string
}

// New makes the certificates (a CA and a gateway certificate for
// 127.0.0.1) and fresh tokens in dir.
func New(dir string) (*Rig, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	certs, err := devcert.WriteFiles(dir, "gateway", "127.0.0.1", "localhost")
	if err != nil {
		return nil, err
	}
	return &Rig{
		Dir:            dir,
		Certs:          certs,
		BrokerToken:    gateway.NewToken(),
		ConnectorToken: gateway.NewToken(),
		JiraToken:      gateway.NewToken(),
	}, nil
}

// GatewayAddrs are the listen addresses of a gateway.
type GatewayAddrs struct {
	Tunnel, API, Admin string
}

// FreeGatewayAddrs picks free loopback ports: a tunnel port free on both
// TCP and UDP, an API port and an admin port.
func FreeGatewayAddrs() (GatewayAddrs, error) {
	var a GatewayAddrs
	var err error
	if a.Tunnel, err = FreeTunnelAddr(); err != nil {
		return a, err
	}
	if a.API, err = FreeAddr(); err != nil {
		return a, err
	}
	a.Admin, err = FreeAddr()
	return a, err
}

// GatewayConfig returns the gateway's YAML config: one broker with the
// rig's broker and connector tokens (hashed), logging at level.
func (r *Rig) GatewayConfig(a GatewayAddrs, level string) []byte {
	return gatewayyaml.YAML(r.gatewayYAML(a, level))
}

func (r *Rig) gatewayYAML(a GatewayAddrs, level string) gatewayyaml.Config {
	return gatewayyaml.Config{
		Tunnel: a.Tunnel, API: a.API, Admin: a.Admin,
		CertFile: r.Certs.Cert, KeyFile: r.Certs.Key,
		Brokers:  []gatewayyaml.Broker{{ID: BrokerID, Token: r.BrokerToken, ConnectorTokens: []string{r.ConnectorToken}}},
		LogLevel: level,
		// The simulated agents all belong to the rig's one broker, where
		// a real gateway's belong to thousands: the per-broker cap is
		// raised to its maximum, the other limits are the shipped ones.
		More: "limits:\n  sessions_per_broker: 10000\n",
	}
}

// Agent varies the agent's config.
type Agent struct {
	Transport   string // tcp or quic
	Tunnel      string // the gateway's tunnel address
	JiraURL     string
	Connections int    // 0: the default
	Admin       string // admin listen address; "" turns it off
	Level       string // log level
}

// AgentConfig writes broker.token and returns the agent's YAML config: one
// Data Center style site with a bearer token read from $JIRA_TOKEN.
func (r *Rig) AgentConfig(a Agent) ([]byte, error) {
	tokenFile := filepath.Join(r.Dir, "broker.token")
	if err := os.WriteFile(tokenFile, []byte(r.BrokerToken+"\n"), 0o600); err != nil {
		return nil, err
	}
	conns := ""
	if a.Connections > 0 {
		conns = fmt.Sprintf("\n  connections: %d", a.Connections)
	}
	return fmt.Appendf(nil, `broker:
  id: %s
  token_file: %s
state_dir: %s
gateway:
  address: %s
  transport: %s
  ca_file: %s
  proxy: ""%s
sites:
  - name: %s
    url: %s
    auth:
      type: bearer
      token: ${JIRA_TOKEN}
admin:
  listen: %q
log:
  level: %s
`, BrokerID, tokenFile, filepath.Join(r.Dir, "state"), a.Tunnel, a.Transport, r.Certs.CACert, conns,
		Site, a.JiraURL, a.Admin, a.Level), nil
}

// Dialer returns a tunnel dialer that trusts the rig's CA.
func (r *Rig) Dialer(transport string) (*tunnel.Dialer, error) {
	pem, err := os.ReadFile(r.Certs.CACert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", r.Certs.CACert)
	}
	return &tunnel.Dialer{Transport: transport, TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}, nil
}

// Hello is the hello of a simulated agent of the rig's broker.
func (r *Rig) Hello(jiraURL string) tunnel.Hello {
	return tunnel.Hello{
		Protocol:     tunnel.ProtocolVersion,
		BrokerID:     BrokerID,
		Token:        r.BrokerToken,
		AgentID:      "sim",
		AgentVersion: "bench",
		OS:           runtime.GOOS + "/" + runtime.GOARCH,
		Sites:        []tunnel.SiteInfo{{Name: Site, Type: "jira", URL: jiraURL, AuthType: "bearer"}},
	}
}

// FreeTunnelAddr returns a loopback address whose port is free on both
// TCP and UDP, as the gateway's tunnel listener needs.
func FreeTunnelAddr() (string, error) {
	for range 20 {
		addr, err := FreeAddr()
		if err != nil {
			return "", err
		}
		if freeport.Free(addr, true) {
			return addr, nil
		}
	}
	return "", fmt.Errorf("no port free on both tcp and udp")
}

// FreeAddr returns a free loopback TCP address.
func FreeAddr() (string, error) { return freeport.Loopback() }

// Replica is what a gateway of a cluster adds to GatewayAddrs.
type Replica struct {
	GatewayAddrs
	Internal   string // listen.internal; advertised as http://<Internal>
	RedisURL   string
	SecretFile string // cluster.secret_file, shared by the replicas
}

// ReplicaConfig returns the config of one gateway replica sharing a Redis
// registry with the others: GatewayConfig's, plus the cluster settings.
func (r *Rig) ReplicaConfig(a Replica, level string) []byte {
	c := r.gatewayYAML(a.GatewayAddrs, level)
	c.Internal = a.Internal
	c.More += fmt.Sprintf(`registry:
  type: redis
  url: %q
  advertise: %q
cluster:
  secret_file: %q
`, a.RedisURL, "http://"+a.Internal, a.SecretFile)
	return gatewayyaml.YAML(c)
}
