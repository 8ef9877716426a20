package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/oxsecurity/oxbroker/agent"
	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/cmd/internal/cli"
	"github.com/oxsecurity/oxbroker/config"
)

func checkCmd() *cobra.Command {
	var (
		path      string
		asJSON    bool
		asService bool
		timeout   time.Duration
	)
	c := &cobra.Command{
		Use:   "check",
		Short: "Test the way to the OX gateway and to each Jira site; exit 0 only if all pass",
		Long: `oxbroker check validates the config, then tests everything the agent needs, the way the agent
does it, and says for each problem what is wrong and how to fix it.

The OX gateway (gateway.address):
  dns          the gateway's host name resolves
  tcp          a TCP connection opens (through gateway.proxy or HTTPS_PROXY if set)
  tls          the gateway's certificate is valid (system roots + gateway.ca_file)
  quic         a QUIC handshake over UDP works (transport auto or quic, no proxy);
               with transport auto a failure is only a warning: the agent uses TCP
  auth         the gateway accepts broker.id and broker.token

Each Jira site:
  cloud_id     cloud_site resolves to a Cloud ID (cloud_site only)
  dns, tcp     Jira's host resolves and answers (through the site's proxy if one applies)
  tls          Jira's certificate is valid (system roots + tls.ca_file)
  credentials  GET /rest/api/3/myself with the site's token, through the same
               allowlist, proxy and TLS settings as OX's requests; says who the token is
  permissions  the account may browse projects and create issues

All checks run at the same time and finish within --timeout. Run check as the
service's user, with the same environment: ${NAME} references in the config are
read from it. --as-service does that on Linux: run as root, it runs the checks as
user oxbroker, the user of the package's service (runuser -u oxbroker -- oxbroker
check ... does the same). Run as root without it, check warns of each file the
config names that user oxbroker could not read, with the chgrp/chmod that fixes
it. Tokens are never printed.

Exit status: 0 when no check failed (warnings allowed), 1 when the config is
invalid or a check failed, 2 on a bad command line.`,
		Example: `  oxbroker check --config /etc/oxbroker/config.yaml
  oxbroker check --config /etc/oxbroker/config.yaml --json | jq '.sites[].results[] | select(.status == "fail")'`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return cli.Usagef(c, "--timeout must be positive, got %s", timeout)
			}
			if asService {
				return checkAsService(c, path, timeout, asJSON)
			}
			cfg, err := loadConfig(c, path)
			if err != nil {
				return err
			}
			printWarnings(c.ErrOrStderr(), path, cfg)
			warnServiceUser(c.ErrOrStderr(), path, cfg)
			return runChecks(c, cfg, timeout, asJSON)
		},
	}
	configFlag(c, &path)
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	c.Flags().DurationVar(&timeout, "timeout", diag.DefaultTimeout, "time limit for all checks together")
	c.Flags().BoolVar(&asService, "as-service", false, "run the checks as the service's user (Linux, as root)")
	return c
}

// runChecks runs every check of cfg within timeout and prints the report:
// a table, or JSON. It fails when a check failed.
func runChecks(c *cobra.Command, cfg *config.Agent, timeout time.Duration, asJSON bool) error {
	rep := diag.Check(c.Context(), cfg, diag.Options{
		Timeout: timeout,
		Version: version,
		AgentID: agent.ReadAgentID(cfg.StateDir),
		Dialer:  agent.NewDialer,
		CloudID: agent.DiscoverCloudID,
	})
	out := c.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(out, cfg, rep)
	}
	if !rep.OK {
		return cli.Reported(errors.New("a check failed"))
	}
	return nil
}

// checkAsService runs this check again as the service's user (on Linux,
// user oxbroker when it exists), with the same environment, so that a
// file or a folder that user may not read fails as the service would.
func checkAsService(c *cobra.Command, path string, timeout time.Duration, asJSON bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	args := []string{"check", "--config", abs, "--timeout", timeout.String()}
	if asJSON {
		args = append(args, "--json")
	}
	cmd, err := asServiceCmd(c.Context(), serviceUser(), args)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = c.OutOrStdout(), c.ErrOrStderr()
	var exit *exec.ExitError
	if err := cmd.Run(); errors.As(err, &exit) {
		return cli.Reported(fmt.Errorf("check as the service's user: %w", err))
	} else if err != nil {
		return err
	}
	return nil
}

// Marks of the table, by status.
var marks = map[string]string{
	diag.StatusPass: "✓",
	diag.StatusFail: "✗",
	diag.StatusWarn: "!",
	diag.StatusSkip: "-",
}

// printReport writes the report as a table: one line per check, and the
// cause and fix under a failure or warning.
func printReport(w io.Writer, cfg *config.Agent, rep diag.Report) {
	var failed, warned int
	block := func(title string, rs []diag.Result) {
		fmt.Fprintln(w, title)
		for _, r := range rs {
			took := ""
			if r.Status != diag.StatusSkip {
				took = fmt.Sprintf("%dms", r.DurationMS)
			}
			fmt.Fprintf(w, "  %s %-12s %6s  %s\n", marks[r.Status], r.Name, took, r.Detail)
			if r.Cause != "" {
				fmt.Fprintf(w, "      cause: %s\n", r.Cause)
			}
			if r.Fix != "" {
				fmt.Fprintf(w, "      fix:   %s\n", r.Fix)
			}
			switch r.Status {
			case diag.StatusFail:
				failed++
			case diag.StatusWarn:
				warned++
			}
		}
		fmt.Fprintln(w)
	}
	block(fmt.Sprintf("Gateway %s (transport %s)", cfg.Gateway.Address, cfg.Gateway.Transport), rep.Gateway)
	for i, s := range rep.Sites {
		where := ""
		if i < len(cfg.Sites) {
			where = cfg.Sites[i].URL
			if cfg.Sites[i].CloudSite != "" {
				where = "cloud_site " + cfg.Sites[i].CloudSite
			}
		}
		block(fmt.Sprintf("Site %s (%s)", s.Site, where), s.Results)
	}
	switch {
	case failed > 0:
		fmt.Fprintf(w, "%d %s failed%s. Fix the first failure of each block, then run oxbroker check again.\n",
			failed, plural(failed, "check"), warnings(warned))
	default:
		fmt.Fprintf(w, "All checks passed%s.\n", warnings(warned))
	}
}

func warnings(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d %s)", n, plural(n, "warning"))
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}
