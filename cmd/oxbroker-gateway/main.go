// Command oxbroker-gateway is the OX side of OX Broker: agents dial in to
// it, and OX's Jira connector calls it as if it were Jira.
package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/oxsecurity/oxbroker/admin"
	"github.com/oxsecurity/oxbroker/cmd/internal/cli"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/internal/sdnotify"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() { cli.Main(newRoot()) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "oxbroker-gateway",
		Short: "OX Broker gateway: agents dial in, OX's Jira connector calls /b/{broker}/{site}/...",
		Long: `oxbroker-gateway accepts tunnel sessions from OX Broker agents (QUIC on UDP and
TLS+yamux on TCP, on one port) and serves the connector API: a Jira client pointed at
https://<gateway>/b/<broker>/<site> with a connector token reaches that site's Jira
through the broker's agent, which adds the Jira credentials on its side.

Try it locally:
  oxbroker-gateway dev --dir /tmp/oxdev`,
	}
	root.AddCommand(runCmd(), tokenCmd(), devCmd(), brokerCmd(), cli.VersionCmd("oxbroker-gateway", version, commit))
	return cli.Group(root)
}

func configFlag(c *cobra.Command, p *string) {
	cli.ConfigFlag(c, p, "/etc/oxbroker-gateway/config.yaml", "gateway's")
}

// loadConfig loads and validates the config, printing every problem.
func loadConfig(c *cobra.Command, path string) (*config.Gateway, error) {
	cfg, err := config.LoadGateway(path, nil)
	if err != nil {
		return nil, cli.BadConfig(c, path, err)
	}
	return cfg, nil
}

func runCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the gateway in the foreground",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := loadConfig(c, path)
			if err != nil {
				return err
			}
			logOut := cli.NewLogBuffer(c.ErrOrStderr())
			defer logOut.Close()
			log := cfg.Log.NewLogger(logOut)
			reg := admin.NewRegistry()
			g, err := gateway.New(cfg, gateway.Options{Logger: log, Version: version, Metrics: reg})
			if err != nil {
				return cli.CannotStart(log, err)
			}
			if err := g.Listen(); err != nil {
				return cli.CannotStart(log, err)
			}
			if cfg.Listen.Admin != "" {
				srv, err := admin.Start(cfg.Listen.Admin, reg, g.Ready, g.StatusHandler(), cfg.Admin, log)
				if err != nil {
					return cli.CannotStart(log, err)
				}
				defer srv.Close()
			}
			// A Type=notify unit (the package's) starts the gateway's
			// dependents once its listeners are up, and shows the drain.
			sdnotify.Notify(sdnotify.Ready, sdnotify.Status("listening: tunnel "+g.TunnelAddr().String()+", API "+g.APIAddr().String()))
			stopping := context.AfterFunc(c.Context(), func() {
				sdnotify.Notify(sdnotify.Stopping, sdnotify.Status("stopping: draining connector calls and agent sessions"))
			})
			defer stopping()
			return g.Serve(c.Context())
		},
	}
	configFlag(c, &path)
	return c
}

func tokenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "Print a new random token and the sha256 hash to put in the config",
		Long: `Prints a new token (give it to the agent as broker.token, or to OX's connector as a
connector token) and its hash (put it in brokers[].token or brokers[].connector_tokens).
The gateway stores only the hash.`,
		Args: cli.NoArgs,
		Run: func(c *cobra.Command, _ []string) {
			t := gateway.NewToken()
			fmt.Fprintf(c.OutOrStdout(), "token: %s\nhash:  %s\n", t, gateway.HashToken(t))
		},
	}
}
