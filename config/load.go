package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// LoadAgent reads, decodes, completes and validates the agent config at
// path, as described in the package documentation. lookupEnv resolves
// ${NAME} and OXBROKER_* overrides; nil means os.LookupEnv. A YAML syntax
// error is returned as it is; every other problem is reported in one
// Errors value.
func LoadAgent(path string, lookupEnv func(string) (string, bool)) (*Agent, error) {
	return load(path, lookupEnv, ParseAgent)
}

// LoadGateway is LoadAgent for the gateway config; overrides are
// OXGATEWAY_* variables.
func LoadGateway(path string, lookupEnv func(string) (string, bool)) (*Gateway, error) {
	return load(path, lookupEnv, ParseGateway)
}

// load reads the file at path and parses it with parse.
func load[T any](path string, lookupEnv func(string) (string, bool), parse func([]byte, func(string) (string, bool)) (*T, error)) (*T, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, deniedError(path, err)
	}
	cfg, err := parse(data, lookupEnv)
	return cfg, withFile(path, err)
}

// withFile names the file in a YAML syntax error, which has no key path.
func withFile(path string, err error) error {
	var errs Errors
	if err == nil || errors.As(err, &errs) {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// ParseAgent is LoadAgent for YAML already read. Relative token_file paths
// are read relative to the working directory of the process, not to the
// config file.
func ParseAgent(data []byte, lookupEnv func(string) (string, bool)) (*Agent, error) {
	return parseAgent(data, lookupEnv, readTokenFile)
}

// ParseGateway is LoadGateway for YAML already read.
func ParseGateway(data []byte, lookupEnv func(string) (string, bool)) (*Gateway, error) {
	var g Gateway
	d, err := decode(data, "OXGATEWAY_", lookupEnv, &g)
	if err != nil {
		return nil, err
	}
	d.readToken("admin.auth", g.Admin.Auth.TokenFile, &g.Admin.Auth.Token, readGatewayTokenFile)
	g.setDefaults(d.set)
	return finish(&g, d, g.Validate())
}

// parseAgent takes the token file reader as a parameter so that the fuzz
// test does not open files named by random input.
func parseAgent(data []byte, lookupEnv func(string) (string, bool), readFile tokenReader) (*Agent, error) {
	var a Agent
	d, err := decode(data, "OXBROKER_", lookupEnv, &a)
	if err != nil {
		return nil, err
	}
	d.readToken("broker", a.Broker.TokenFile, &a.Broker.Token, readFile)
	for i := range a.Sites {
		auth := &a.Sites[i].Auth
		d.readToken("sites["+strconv.Itoa(i)+"].auth", auth.TokenFile, &auth.Token, readFile)
	}
	d.readToken("admin.auth", a.Admin.Auth.TokenFile, &a.Admin.Auth.Token, readFile)
	a.setDefaults(d.set)
	a.warnings = withLines(d.warnings, d.lines)
	return finish(&a, d, a.Validate())
}

// finish returns cfg, or every problem found loading and validating it,
// each with the line of its key where the file has one.
func finish[T any](cfg *T, d *decoded, validateErr error) (*T, error) {
	var validated Errors
	errors.As(validateErr, &validated)
	if errs := merge(reflect.TypeFor[T](), d.errs, validated); len(errs) > 0 {
		return nil, withLines(errs, d.lines)
	}
	return cfg, nil
}

// tokenReader reads a token file: its content, and advice about who else
// may read it (a warning); a file that must not be used is an error.
type tokenReader func(name string) (data []byte, advice string, err error)

// readToken fills token from the token_file of the mapping at path.
// Messages never include the file's content.
func (d *decoded) readToken(path, file string, token *Secret, readFile tokenReader) {
	if file == "" {
		return
	}
	if !token.IsZero() {
		d.errs.add(path+".token_file", "set either token or token_file, not both")
		return
	}
	data, advice, err := readFile(file)
	if err != nil {
		d.errs.add(path+".token_file", err.Error())
		return
	}
	if advice != "" {
		d.warnings.add(path+".token_file", advice)
	}
	t := strings.TrimSpace(string(data))
	if t == "" {
		d.errs.add(path+".token_file", "file "+file+" is empty")
		return
	}
	*token = Secret(t)
}

// maxTokenFile bounds what readTokenFile reads, so that a token_file
// pointing at a log or a device does not fill memory.
const maxTokenFile = 64 << 10

// readTokenFile reads an agent's token file (ReadSecretFile).
func readTokenFile(name string) ([]byte, string, error) { return ReadSecretFile(name, AgentGroup) }

// readGatewayTokenFile reads a gateway's token file (ReadSecretFile).
func readGatewayTokenFile(name string) ([]byte, string, error) {
	return ReadSecretFile(name, GatewayGroup)
}

// ReadSecretFile reads a file that holds a secret (a token file, the
// gateway's cluster secret) of a program whose service runs as group
// serviceGroup, once checkSecretFile has judged who else may use it: a
// file others may write is an error, one others may read comes with
// advice (a warning to log). Neither message holds the content.
func ReadSecretFile(name, serviceGroup string) ([]byte, string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, "", deniedError(name, err)
	}
	defer f.Close()
	access, err := checkSecretFile(name, serviceGroup, f)
	if err != nil {
		return nil, "", err
	}
	if access.problem != "" {
		return nil, "", errors.New(access.problem)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return nil, "", err
	}
	if len(data) > maxTokenFile {
		return nil, "", fmt.Errorf("file %s is larger than %d KiB; it does not hold a token", name, maxTokenFile>>10)
	}
	return data, access.advice, nil
}

// AgentAdminListen reads only admin.listen of the agent config at path (its
// default when the key is absent), for the commands that ask a running agent
// how it is (service status). Those run where the agent's secrets may not be
// readable — a systemd credential exists only inside the service, so its
// ${CREDENTIALS_DIRECTORY} is unset outside — so token files are not read
// and the other keys' problems are not this caller's concern.
func AgentAdminListen(path string, lookupEnv func(string) (string, bool)) (string, error) {
	listen, err := load(path, lookupEnv, parseAdminListen)
	if err != nil {
		return "", err
	}
	return *listen, nil
}

// parseAdminListen is AgentAdminListen for YAML already read.
func parseAdminListen(data []byte, lookupEnv func(string) (string, bool)) (*string, error) {
	var a Agent
	d, err := decode(data, "OXBROKER_", lookupEnv, &a)
	if err != nil {
		return nil, err
	}
	for _, fe := range d.errs {
		if fe.Path == "admin.listen" || fe.Path == "admin" || fe.Path == "" {
			return nil, withLines(Errors{fe}, d.lines)
		}
	}
	a.setDefaults(d.set)
	return &a.Admin.Listen, nil
}
