package agent

import (
	"errors"
	"fmt"
	"strings"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/certpool"
	"github.com/oxsecurity/oxbroker/jira"
)

// CheckAllowlists checks every site's allow: section against Jira's
// operations table (unknown operationIds, scopes and templates), which
// the config package cannot do on its own. Problems come back as
// config.Errors with full key paths (sites[1].allow.operations[0]: ...).
func CheckAllowlists(cfg *config.Agent) error {
	var all config.Errors
	for i, s := range cfg.Sites {
		_, err := jira.NewAllowlist(s.Allow)
		if err == nil {
			continue
		}
		var errs config.Errors
		if !errors.As(err, &errs) {
			all = append(all, config.FieldError{Path: fmt.Sprintf("sites[%d].allow", i), Message: err.Error()})
			continue
		}
		for _, e := range errs {
			e.Path = fmt.Sprintf("sites[%d].%s", i, e.Path)
			all = append(all, e)
		}
	}
	if len(all) == 0 {
		return nil
	}
	return all
}

// CheckCAFiles reads the CA files the config names (gateway.ca_file,
// sites[].tls.ca_file) as the agent will at start, so that `config
// validate` refuses one that is missing, unreadable or holds no PEM
// certificate rather than the service failing to start on it.
func CheckCAFiles(cfg *config.Agent) error {
	var errs config.Errors
	check := func(key, file string) {
		if _, err := certpool.Load(key, file, nil); err != nil {
			errs = append(errs, config.FieldError{Path: key, Message: strings.TrimPrefix(err.Error(), key+": ")})
		}
	}
	check("gateway.ca_file", cfg.Gateway.CAFile)
	for i, s := range cfg.Sites {
		check(fmt.Sprintf("sites[%d].tls.ca_file", i), s.TLS.CAFile)
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}
