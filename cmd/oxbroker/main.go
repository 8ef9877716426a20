// Command oxbroker is the OX Broker agent: it runs inside the customer's
// network, holds the Jira credentials, dials out to the OX gateway and
// serves the Jira API calls that arrive over the tunnel.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/oxsecurity/oxbroker/admin"
	"github.com/oxsecurity/oxbroker/agent"
	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/cmd/internal/cli"
	"github.com/oxsecurity/oxbroker/config"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() { cli.Main(newRoot()) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "oxbroker",
		Short: "OX Broker agent: lets OX reach your Jira without holding its token or opening a port",
		Long: `oxbroker runs inside your network. It keeps your Jira credentials, dials out to the
OX gateway (QUIC, or TLS over TCP, optionally through an HTTP proxy) and forwards the
Jira API calls OX makes, after checking each against an allowlist.

Start with:
  oxbroker config validate --config /etc/oxbroker/config.yaml
  oxbroker run --config /etc/oxbroker/config.yaml`,
	}
	root.AddCommand(runCmd(), checkCmd(), configCmd(), serviceCmd(), secretCmd(secrets), jiraCmd(), cli.VersionCmd("oxbroker", version, commit))
	return cli.Group(root)
}

func configFlag(c *cobra.Command, p *string) {
	cli.ConfigFlag(c, p, config.DefaultAgentPath(), "agent's")
}

// loadConfig loads and validates the config, printing every problem, and
// every warning unless the caller logs them (run).
func loadConfig(c *cobra.Command, path string) (*config.Agent, error) {
	cfg, err := config.LoadAgent(path, lookupEnv())
	if err == nil {
		err = agent.CheckAllowlists(cfg)
	}
	if err == nil {
		err = agent.CheckCAFiles(cfg)
	}
	if err != nil {
		return nil, cli.BadConfig(c, path, err)
	}
	return cfg, nil
}

// printWarnings prints what loading found worth fixing, one
// "warning: key.path: message" line each.
func printWarnings(w io.Writer, path string, cfg *config.Agent) {
	for _, fe := range cfg.Warnings() {
		fmt.Fprintf(w, "%s: warning: %s\n", path, fe)
	}
}

// logWarnings logs what loading found worth fixing.
func logWarnings(log *slog.Logger, path string, cfg *config.Agent) {
	for _, fe := range cfg.Warnings() {
		log.Warn("config: "+fe.Message, "key", fe.Path, "config", path)
	}
}

func runCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground (the service runs this)",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			c.SetErr(logOutput(c.ErrOrStderr()))
			cfg, err := loadConfig(c, path)
			if err != nil {
				return err
			}
			logOut := cli.NewLogBuffer(c.ErrOrStderr())
			defer logOut.Close()
			log := cfg.Log.NewLogger(logOut)
			logWarnings(log, path, cfg)
			reg := admin.NewRegistry()
			a, err := agent.New(c.Context(), cfg, agent.Options{Logger: log, Version: version, Metrics: reg})
			if err != nil {
				return cli.CannotStart(log, err)
			}
			if cfg.Admin.Listen != "" {
				srv, err := admin.Start(cfg.Admin.Listen, reg, a.Readiness, a.StatusHandler(), cfg.Admin.PageAccess(), log)
				if err != nil {
					return cli.CannotStart(log, err)
				}
				defer srv.Close()
			}
			log.Info("oxbroker starting", "version", version, "broker", cfg.Broker.ID, "agent_id", a.AgentID(),
				"gateway", cfg.Gateway.Address, "transport", cfg.Gateway.Transport,
				"connections", cfg.Gateway.Connections, "sites", len(cfg.Sites))
			ctx, stop := context.WithCancel(c.Context())
			reloaded, supervised := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(reloaded)
				watchReload(ctx, path, cfg, a, log)
			}()
			go func() {
				defer close(supervised)
				superviseAgent(ctx, a, log)
			}()
			injectFault(ctx, a, log)
			err = runManaged(ctx, a.Run)
			stop()
			<-reloaded
			<-supervised
			log.Info("oxbroker stopped")
			return err
		},
	}
	configFlag(c, &path)
	return c
}

func configCmd() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Validate or show the agent's config"}
	var (
		vpath, spath string
		connect      bool
		timeout      time.Duration
	)
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Check the config offline; prints one `key.path: message` line per problem",
		Long: `Checks the config offline and prints one "key.path: message" line per problem, or
"<file>: ok". Run as root, it also warns of each file the config names that the
service's user (oxbroker) could not read, with the chgrp/chmod that fixes it.

With --connect it then tries the config's settings as oxbroker check does (the
gateway with the broker token, each site's Jira with its token) without touching
the running service: run it before saving a new config over the one in use, whose
changes the service takes at once.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return cli.Usagef(c, "--timeout must be positive, got %s", timeout)
			}
			cfg, err := loadConfig(c, vpath)
			if err != nil {
				return err
			}
			printWarnings(c.ErrOrStderr(), vpath, cfg)
			warnServiceUser(c.ErrOrStderr(), vpath, cfg)
			fmt.Fprintf(c.OutOrStdout(), "%s: ok\n", vpath)
			if connect {
				fmt.Fprintln(c.OutOrStdout())
				return runChecks(c, cfg, timeout, false)
			}
			return nil
		},
	}
	configFlag(validate, &vpath)
	validate.Flags().BoolVar(&connect, "connect", false, "then try the settings: connect to the gateway and to each site's Jira, as oxbroker check does")
	validate.Flags().DurationVar(&timeout, "timeout", diag.DefaultTimeout, "time limit of --connect")
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective config (defaults and overrides applied), secrets redacted",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := loadConfig(c, spath)
			if err != nil {
				return err
			}
			b, err := cfg.Redacted()
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(b)
			return err
		},
	}
	configFlag(show, &spath)
	c.AddCommand(validate, show)
	return cli.Group(c)
}

func jiraCmd() *cobra.Command {
	c := &cobra.Command{Use: "jira", Short: "Jira helpers"}
	var path string
	cloudID := &cobra.Command{
		Use:   "cloud-id SITE",
		Short: "Print the Cloud ID of SITE (acme, acme.atlassian.net or https://acme.atlassian.net)",
		Long: `Reads https://SITE/_edge/tenant_info (no credentials are sent) and prints the Cloud ID,
for a service-account URL of the form https://api.atlassian.com/ex/jira/<cloudId>.

It reads it as the running agent does: through HTTPS_PROXY (NO_PROXY honoured) and the system's
root certificates; with --config, through the proxy and TLS settings of the config's site whose
cloud_site or name is SITE. A redirect to another host is refused.`,
		Args: cli.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			site := config.Site{CloudSite: args[0]}
			if path != "" {
				cfg, err := loadConfig(c, path)
				if err != nil {
					return err
				}
				i := slices.IndexFunc(cfg.Sites, func(s config.Site) bool { return s.CloudSite == args[0] || s.Name == args[0] })
				if i < 0 {
					return cli.Usagef(c, "%s has no site whose cloud_site or name is %q", path, args[0])
				}
				site = cfg.Sites[i]
				if site.CloudSite == "" {
					return cli.Usagef(c, "site %q of %s has no cloud_site", site.Name, path)
				}
			}
			id, err := agent.DiscoverCloudID(c.Context(), site)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.OutOrStdout(), id)
			return nil
		},
	}
	cloudID.Flags().StringVarP(&path, "config", "c", "", "read through the proxy and TLS settings of this agent config's site")
	c.AddCommand(cloudID)
	return cli.Group(c)
}
