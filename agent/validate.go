package agent

import (
	"errors"
	"fmt"

	"github.com/oxsecurity/oxbroker/config"
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
