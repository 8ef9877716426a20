package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/oxsecurity/oxbroker/cmd/internal/cli"
	"github.com/oxsecurity/oxbroker/gateway"
)

func brokerCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "broker",
		Short: "Brokers defined in the Redis registry (registry.type redis)",
	}
	c.AddCommand(brokerAddCmd())
	return cli.Group(c)
}

func brokerAddCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "add ID --config FILE",
		Short: "Define a new broker in Redis, with fresh tokens, for every replica to accept",
		Long: `add makes a broker token and a connector token, stores their sha256 hashes in the
Redis registry of the config (the hash oxbroker:broker:ID) and prints the tokens, once.
Every replica accepts the broker within seconds, without a restart or a new config.
It refuses an id that the config file or Redis already has.`,
		Args: cli.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := loadConfig(c, path)
			if err != nil {
				return err
			}
			broker, connector := gateway.NewToken(), gateway.NewToken()
			ctx, cancel := context.WithTimeout(c.Context(), 10*time.Second)
			defer cancel()
			if err := gateway.AddBroker(ctx, cfg, args[0], gateway.HashToken(broker), []string{gateway.HashToken(connector)}); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "broker:          %s\nbroker token:    %s\nconnector token: %s\n", args[0], broker, connector)
			return nil
		},
	}
	configFlag(c, &path)
	return c
}
