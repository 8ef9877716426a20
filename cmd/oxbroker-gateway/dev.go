package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oxsecurity/oxbroker/cmd/internal/cli"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/internal/gatewayyaml"
)

type devFlags struct {
	dir       string
	tunnel    string
	api       string
	jiraURL   string
	jiraAuth  string
	jiraEmail string
}

func devCmd() *cobra.Command {
	var f devFlags
	c := &cobra.Command{
		Use:   "dev --dir DIR",
		Short: "Run a local trial gateway: self-signed CA, broker \"dev\", fresh tokens, DIR/agent.yaml",
		Long: `dev writes into DIR a throwaway CA and certificate, fresh broker and connector tokens,
gateway.yaml (hashes only) and agent.yaml (ready for "oxbroker run --config DIR/agent.yaml",
its Jira token read from the JIRA_TOKEN environment variable), then runs the gateway.

The connector token is in DIR/connector.token; call Jira through the gateway with
  curl -H "Authorization: Bearer $(cat DIR/connector.token)" $(cat DIR/api.url)/b/dev/jira/rest/api/3/myself`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runDev(c, f) },
	}
	c.Flags().StringVar(&f.dir, "dir", "", "folder for the generated files (created if missing)")
	c.Flags().StringVar(&f.tunnel, "tunnel", "127.0.0.1:8443", "tunnel listen address (TCP and UDP)")
	c.Flags().StringVar(&f.api, "api", "127.0.0.1:8080", "connector API listen address")
	c.Flags().StringVar(&f.jiraURL, "jira-url", "http://127.0.0.1:8081", "Jira base URL written into agent.yaml")
	c.Flags().StringVar(&f.jiraAuth, "jira-auth", "bearer", "auth type written into agent.yaml: bearer, basic or service_account")
	c.Flags().StringVar(&f.jiraEmail, "jira-email", "", "email for --jira-auth basic")
	c.MarkFlagRequired("dir")
	return c
}

func runDev(c *cobra.Command, f devFlags) error {
	dir, err := filepath.Abs(f.dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	certs, err := devcert.WriteFiles(dir, "gateway", "127.0.0.1", "localhost")
	if err != nil {
		return err
	}
	brokerToken, connectorToken := gateway.NewToken(), gateway.NewToken()
	write := func(name, data string, mode os.FileMode) error {
		return os.WriteFile(filepath.Join(dir, name), []byte(data), mode)
	}
	if err := write("broker.token", brokerToken+"\n", 0o600); err != nil {
		return err
	}
	if err := write("connector.token", connectorToken+"\n", 0o600); err != nil {
		return err
	}
	// The agent's config must load as written (placeholders stand for the
	// gateway port and the Jira token from JIRA_TOKEN), or the trial would
	// end at the agent's first start.
	placeholder := func(name string) (string, bool) { return "placeholder", name == "JIRA_TOKEN" }
	if _, err := config.ParseAgent([]byte(devAgentYAML(dir, "127.0.0.1:8443", "ca.crt", f)), placeholder); err != nil {
		return cli.UsageError{Err: fmt.Errorf("these flags make an agent.yaml the agent would refuse:\n%w", err)}
	}
	gwYAML := gatewayyaml.YAML(gatewayyaml.Config{
		Comment: `Written by "oxbroker-gateway dev". Tokens are stored as hashes only.`,
		Tunnel:  f.tunnel, API: f.api, Admin: "",
		CertFile: certs.Cert, KeyFile: certs.Key,
		Brokers: []gatewayyaml.Broker{{ID: "dev", Token: brokerToken, ConnectorTokens: []string{connectorToken}}},
	})
	gwPath := filepath.Join(dir, "gateway.yaml")
	if err := write("gateway.yaml", string(gwYAML), 0o600); err != nil {
		return err
	}
	cfg, err := config.LoadGateway(gwPath, nil)
	if err != nil {
		return fmt.Errorf("%s:\n%w", gwPath, err)
	}
	log := cfg.Log.NewLogger(c.ErrOrStderr())
	g, err := gateway.New(cfg, gateway.Options{Logger: log, Version: version})
	if err != nil {
		return err
	}
	if err := g.Listen(); err != nil {
		return err
	}
	port := g.TunnelAddr().(*net.TCPAddr).Port
	agentYAML := devAgentYAML(dir, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), certs.CACert, f)
	if err := write("agent.yaml", agentYAML, 0o600); err != nil {
		return err
	}

	apiURL := "http://" + g.APIAddr().String()
	if err := write("api.url", apiURL+"\n", 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.OutOrStdout(), `OX Broker dev gateway
  tunnel:          %s (TCP and UDP)
  connector API:   %s
  agent config:    %s
  connector token: %s

Start the agent:  JIRA_TOKEN=<your Jira token> oxbroker run --config %s
Call Jira:        curl -H "Authorization: Bearer $(cat %s)" %s/b/dev/jira/rest/api/3/myself
`, g.TunnelAddr(), apiURL, filepath.Join(dir, "agent.yaml"), filepath.Join(dir, "connector.token"),
		filepath.Join(dir, "agent.yaml"), filepath.Join(dir, "connector.token"), apiURL)
	return g.Serve(c.Context())
}

func devAgentYAML(dir, gatewayAddr, caFile string, f devFlags) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by "oxbroker-gateway dev": oxbroker run --config %s
broker:
  id: dev
  token_file: %q
state_dir: %q
gateway:
  address: %q
  transport: auto
  connections: 2
  ca_file: %q
sites:
  - name: jira
    url: %q
    auth:
      type: %s
      token: ${JIRA_TOKEN}
`, filepath.Join(dir, "agent.yaml"), filepath.Join(dir, "broker.token"), filepath.Join(dir, "agent-state"),
		gatewayAddr, caFile, f.jiraURL, f.jiraAuth)
	if f.jiraEmail != "" {
		fmt.Fprintf(&b, "      email: %q\n", f.jiraEmail)
	}
	b.WriteString("admin:\n  listen: \"\"\n")
	return b.String()
}
