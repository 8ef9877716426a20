// Package cli holds what the two binaries' command lines share: exit
// codes scripts can rely on, usage errors, and cobra helpers.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes: 0 ok, 1 check/validation/run failed, 2 bad command line.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// UsageError is a bad command line.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError that ends with c's usage.
func Usagef(c *cobra.Command, format string, args ...any) error {
	return UsageError{fmt.Errorf(format+"\n\n%s", append(args, c.UsageString())...)}
}

// reportedError marks an error whose text the command already printed.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// Reported marks err as already shown to the user.
func Reported(err error) error { return reportedError{err} }

// ConfigFlag adds --config (-c), the path of the command's YAML config;
// whose says whose config it is ("agent's", "gateway's").
func ConfigFlag(c *cobra.Command, p *string, def, whose string) {
	c.Flags().StringVarP(p, "config", "c", def, "path of the "+whose+" YAML config")
}

// BadConfig prints why the config at path did not load (every problem,
// under the file's name) and returns err as reported.
func BadConfig(c *cobra.Command, path string, err error) error {
	fmt.Fprintf(c.ErrOrStderr(), "%s:\n%v\n", path, err)
	return Reported(err)
}

// CannotStart logs why a program cannot start, as the last line of its
// run command, and returns err as reported there.
func CannotStart(log *slog.Logger, err error) error {
	log.Error("cannot start", "err", err)
	return Reported(err)
}

// Main runs root with the process's arguments, cancels its context on
// SIGINT/SIGTERM, prints an error that was not already shown, and exits
// with the matching code.
func Main(root *cobra.Command) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return Usagef(c, "%v", err) })
	err := root.ExecuteContext(ctx)
	stop()
	os.Exit(Exit(err, os.Stderr))
}

// Exit prints err to w unless it was already shown and returns its code.
func Exit(err error, w io.Writer) int {
	if err == nil {
		return ExitOK
	}
	var r reportedError
	if !errors.As(err, &r) {
		fmt.Fprintln(w, "Error:", err)
	}
	var u UsageError
	if errors.As(err, &u) {
		return ExitUsage
	}
	return ExitFailed
}

// Group makes c, a command that only holds subcommands, answer an unknown
// or missing subcommand with a usage error (exit 2) instead of cobra's
// default of printing help and exiting 0.
func Group(c *cobra.Command) *cobra.Command {
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return Usagef(c, "unknown command %q for %q", args[0], c.CommandPath())
		}
		return Usagef(c, "%s needs a subcommand", c.CommandPath())
	}
	return c
}

// NoArgs refuses positional arguments with a usage error.
func NoArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return Usagef(c, "%s takes no arguments, got %q", c.CommandPath(), args)
	}
	return nil
}

// ExactArgs wants n positional arguments.
func ExactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return Usagef(c, "%s takes %d argument(s), got %d", c.CommandPath(), n, len(args))
		}
		return nil
	}
}

// VersionCmd prints name, version, commit and the Go version.
func VersionCmd(name, version, commit string) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  NoArgs,
		Run: func(c *cobra.Command, _ []string) {
			fmt.Fprintf(c.OutOrStdout(), "%s %s (commit %s, %s, %s/%s)\n", name, version, commit,
				runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
