package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oxsecurity/oxbroker/cmd/internal/cli"
	"github.com/oxsecurity/oxbroker/internal/atomicfile"
)

// secretPrefix starts the names of the variables a config reads stored
// secrets through: ${OXBROKER_SECRET_JIRA_TOKEN} is the secret jira-token.
const secretPrefix = "OXBROKER_SECRET_"

// secretStore keeps secrets the operating system protects (Windows:
// DPAPI, machine scope) as one file each, NAME.dpapi, in dir.
type secretStore struct {
	dir string
	// protect and unprotect seal and open a secret; entropy binds the
	// blob to its name, so that a file renamed to another secret's name
	// does not open.
	protect, unprotect func(data, entropy []byte) ([]byte, error)
	// mkdir creates dir so that only the system and administrators can
	// read what is in it.
	mkdir func(dir string) error
}

// validSecretName allows what maps one to one onto a variable name.
func validSecretName(name string) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') }) {
		return fmt.Errorf("secret name %q: use lower-case letters, digits and '-', e.g. jira-token", name)
	}
	return nil
}

// secretVar is the variable a config names secret name by.
func secretVar(name string) string {
	return secretPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// secretOfVar is the secret a variable names, if it names one.
func secretOfVar(v string) (string, bool) {
	rest, ok := strings.CutPrefix(v, secretPrefix)
	if !ok || rest == "" || strings.ToUpper(rest) != rest {
		return "", false
	}
	name := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
	return name, validSecretName(name) == nil
}

func (s secretStore) path(name string) string { return filepath.Join(s.dir, name+".dpapi") }

func secretEntropy(name string) []byte { return []byte("oxbroker secret " + name) }

// set seals value and writes it as name's file, replacing it whole
// (a rename), so that the running agent, which watches the folder,
// reloads with either the old secret or the new one.
func (s secretStore) set(name string, value []byte) error {
	if err := validSecretName(name); err != nil {
		return err
	}
	if len(value) == 0 {
		return errors.New("the secret is empty")
	}
	blob, err := s.protect(value, secretEntropy(name))
	if err != nil {
		return fmt.Errorf("protect secret %s: %w", name, err)
	}
	if err := s.mkdir(s.dir); err != nil {
		return fmt.Errorf("secret folder %s: %w", s.dir, err)
	}
	if err := atomicfile.Write(s.path(name), blob, 0o600); err != nil {
		return fmt.Errorf("write secret %s: %w", name, err)
	}
	return nil
}

// get opens name's secret.
func (s secretStore) get(name string) ([]byte, error) {
	blob, err := os.ReadFile(s.path(name))
	if err != nil {
		return nil, err
	}
	return s.unprotect(blob, secretEntropy(name))
}

// lookup resolves ${OXBROKER_SECRET_NAME} from the store and every other
// variable with next. A secret that is missing or does not open reads
// as an unset variable, which the config reports by name.
func (s secretStore) lookup(next func(string) (string, bool)) func(string) (string, bool) {
	if s.dir == "" {
		return next
	}
	return func(v string) (string, bool) {
		name, ok := secretOfVar(v)
		if !ok {
			return next(v)
		}
		data, err := s.get(name)
		if err != nil {
			return "", false
		}
		return strings.TrimSpace(string(data)), true
	}
}

// isSecretFile reports whether a change to path is a change of a secret,
// for the config watcher.
func (s secretStore) isSecretFile(path string) bool {
	return s.dir != "" && filepath.Dir(path) == filepath.Clean(s.dir) && strings.HasSuffix(path, ".dpapi")
}

// lookupEnv is how the agent reads ${NAME} in its config: the
// environment, and on Windows the secrets of "oxbroker secret set".
func lookupEnv() func(string) (string, bool) { return secrets.lookup(os.LookupEnv) }

func secretCmd(s secretStore) *cobra.Command {
	c := &cobra.Command{
		Use:   "secret",
		Short: "Keep tokens protected by Windows (DPAPI) instead of in a file",
		Long: `On Windows, "oxbroker secret set NAME" stores a token protected by DPAPI with the
machine's key (machine scope), in %ProgramData%\OXBroker\secrets\NAME.dpapi, a folder only
SYSTEM and Administrators may read. The config reads it as ${` + secretPrefix + `NAME}, the
name in upper case with '-' as '_':
  token: ${OXBROKER_SECRET_JIRA_TOKEN}      # the secret jira-token
The service (LocalSystem) opens it; the file is of no use on another machine. Changing a
secret with "secret set" reloads the running agent.

On Linux use systemd credentials instead: oxbroker service install --credential.`,
	}
	set := s.nameCmd("set NAME", "Store a secret read from standard input (one line), protected by DPAPI (Windows, elevated)",
		func(c *cobra.Command, name string) error {
			if f, ok := c.InOrStdin().(*os.File); ok {
				if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
					fmt.Fprintf(c.ErrOrStderr(), "paste the secret %s, then Enter (it is shown as you type; pipe it in to avoid that):\n", name)
				}
			}
			line, err := bufio.NewReader(io.LimitReader(c.InOrStdin(), 64<<10)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if err := s.set(name, []byte(strings.TrimSpace(line))); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "stored secret %s in %s\nin the config: ${%s}\n", name, s.path(name), secretVar(name))
			return nil
		})
	del := s.nameCmd("delete NAME", "Delete a stored secret (Windows, elevated)",
		func(c *cobra.Command, name string) error {
			if err := os.Remove(s.path(name)); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "deleted secret %s\n", name)
			return nil
		})
	c.AddCommand(set, del)
	return cli.Group(c)
}

// nameCmd is a "secret" subcommand that takes one secret NAME: it runs
// run only where the store exists (Windows) and for a valid name.
func (s secretStore) nameCmd(use, short string, run func(c *cobra.Command, name string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cli.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if s.dir == "" {
				return errSecretsWindowsOnly
			}
			if err := validSecretName(args[0]); err != nil {
				return cli.UsageError{Err: err}
			}
			return run(c, args[0])
		},
	}
}

var errSecretsWindowsOnly = errors.New(`"oxbroker secret" stores DPAPI-protected secrets, on Windows only; on Linux use systemd credentials (oxbroker service install --credential)`)
