package jira

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/oxsecurity/oxbroker/config"
)

// Allowlist decides which Jira REST calls the agent forwards to one site
// (docs/design.md, security invariant 3). It is built from the site's
// config.Allow and the table of Jira Cloud platform operations in
// operations.json, a copy of shared/jira/cloud-platform-v3-operations.json.
//
// The rules, in the order Match applies them:
//
//   - Default deny: a method and path is forwarded only when it matches an
//     operation of the table or a template of allow.rules.
//   - allow.deny refuses an operation (by operationId, or by its
//     "METHOD /template" exactly as the table writes it) or a rule's
//     "METHOD /template", whatever else says.
//   - allow.rules allows its methods on its template, whatever the scopes.
//   - An operation is allowed when Atlassian lists classic scopes for it
//     and allow.scopes grants every one of them. Atlassian's OpenAPI
//     document gives each operation's OAuth 2.0 scopes as the list of one
//     security requirement object ({"OAuth2": [a, b]}), and OpenAPI says
//     every scope of such a list is needed; the table's nine operations
//     with two classic scopes (the expression and dynamic-webhook ones,
//     addGadget) are of that kind: read:jira-work alone does not register
//     webhooks. An operation for which Atlassian lists no classic scope (79
//     in the table: Connect and Forge app APIs, plans, some scheme and
//     priority administration) is refused, since no classic scope tells
//     whether the token may call it, except getServerInfo (see scopeFree).
//   - When allow.operations is not empty, the operation must also be
//     listed there.
//   - Deprecated operations are treated like the others: Jira still serves
//     them until Atlassian removes them, and the token's scopes still
//     govern them.
//
// The table is Jira Cloud's v3 API. Its /rest/api/3 templates also stand
// for /rest/api/2 (Jira Data Center, and Cloud's v2, which has the same
// operations and scopes, with wiki markup instead of ADF) and for
// /rest/api/latest, the alias Jira keeps for its current version (v2 on
// Data Center): since v2 and v3 share their operations, latest is judged
// the same whichever it stands for. Decision.Template carries the version
// the request used.
//
// Path matching follows Jira's router: a template segment "{name}" matches
// any one non-empty segment, and a literal segment is preferred over a
// parameter at the same place, backtracking to the parameter when the
// literal branch fails further down. When two templates of one method
// match the same path and neither is the more literal at every segment
// (GET /rest/api/3/project/type/{projectTypeKey} and
// GET /rest/api/3/project/{projectId}/email both match
// /rest/api/3/project/type/email), which one Jira serves depends on how it
// ranks them, so the path is forwarded only when both are allowed.
//
// An Allowlist does not change once built and is safe for concurrent use.
type Allowlist struct {
	tries   []methodTrie // sorted by method
	granted []string     // allow.scopes, sorted, without duplicates
	allowed []string     // operationIds allowed on some path, sorted
}

// NewAllowlist builds the allowlist of a site from its allow: section.
// A problem with an entry is a config.Errors whose paths are relative to
// allow:, such as `allow.operations[2]: unknown Jira operation "getIssu"`;
// every problem is reported at once.
func NewAllowlist(a config.Allow) (*Allowlist, error) {
	tbl, err := loadTable()
	if err != nil {
		return nil, err
	}
	var errs config.Errors
	fail := func(path, format string, args ...any) {
		errs = append(errs, config.FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}

	granted, scopesOK := map[string]bool{}, true
	for i, s := range a.Scopes {
		switch {
		case tbl.classic[s]:
			granted[s] = true
		case tbl.granular[s]:
			scopesOK = false
			fail(index("allow.scopes", i), "%q is a granular scope; the allowlist works with classic scopes: %s", s, strings.Join(sortedKeys(tbl.classic), ", "))
		default:
			scopesOK = false
			fail(index("allow.scopes", i), "unknown scope %q%s; known classic scopes: %s", s, didYouMean(s, sortedKeys(tbl.classic)), strings.Join(sortedKeys(tbl.classic), ", "))
		}
	}

	type rule struct {
		methods []string
		path    string
		segs    []segment
	}
	var rules []rule
	for i, r := range a.Rules {
		rp := index("allow.rules", i)
		if len(r.Methods) == 0 {
			fail(rp+".methods", "required")
		}
		ok := true
		for j, m := range r.Methods {
			if !slices.Contains(httpMethods, m) {
				fail(index(rp+".methods", j), "%q is not one of %s", m, strings.Join(httpMethods, ", "))
				ok = false
			}
		}
		segs, err := parseTemplate(r.Path)
		switch {
		case err != nil:
			fail(rp+".path", "%q: %v", r.Path, err)
			ok = false
		case !strings.HasPrefix(r.Path, restPrefix):
			fail(rp+".path", "%q: must start with %s (the broker forwards only Jira's REST APIs)", r.Path, restPrefix)
			ok = false
		}
		if ok {
			rules = append(rules, rule{methods: r.Methods, path: r.Path, segs: segs})
		}
	}
	listed := map[*operation]bool{}
	for i, id := range a.Operations {
		op := tbl.byID[id]
		if op == nil {
			fail(index("allow.operations", i), "unknown Jira operation %q%s", id, didYouMean(id, sortedKeys(tbl.byID)))
			continue
		}
		listed[op] = true
		switch missing := missingScopes(op, granted); {
		case scopeFree[op.ID] || !scopesOK:
			// A scope error is already reported; an operation it leaves
			// out would only repeat it.
		case slices.ContainsFunc(rules, func(r rule) bool { return slices.Contains(r.methods, op.Method) && covers(r.segs, op) }):
			// allow.rules allows it.
		case len(op.Scopes) == 0:
			fail(index("allow.operations", i), "%s (%s %s): Atlassian lists no classic scope for it, so it is never allowed by scope; allow it with an allow.rules entry instead", id, op.Method, op.Path)
		case len(missing) > 0:
			fail(index("allow.operations", i), "%s (%s %s) needs scope %s, which allow.scopes does not grant, so it could never be allowed", id, op.Method, op.Path, strings.Join(missing, ", "))
		}
	}

	ruleRoutes := map[string]bool{}
	for _, r := range rules {
		for _, m := range r.methods {
			ruleRoutes[m+" "+r.path] = true
		}
	}

	deniedOps := map[*operation]bool{}
	type route struct {
		method string
		segs   []segment
	}
	var deniedRoutes []route
	for i, entry := range a.Deny {
		dp := index("allow.deny", i)
		method, tmpl, isRoute := strings.Cut(entry, " ")
		if !isRoute {
			op := tbl.byID[entry]
			if op == nil {
				fail(dp, "unknown Jira operation %q%s (write an operationId, or METHOD /path/template)", entry, didYouMean(entry, sortedKeys(tbl.byID)))
				continue
			}
			deniedOps[op] = true
			continue
		}
		if !slices.Contains(httpMethods, method) {
			fail(dp, "%q: want an operationId or METHOD /path/template, with METHOD one of %s", entry, strings.Join(httpMethods, ", "))
			continue
		}
		segs, err := parseTemplate(tmpl)
		if err != nil {
			fail(dp, "%q: %v", entry, err)
			continue
		}
		matched := false
		if op := tbl.byRoute[method+" "+tableForm(tmpl)]; op != nil {
			deniedOps[op] = true
			matched = true
		}
		if ruleRoutes[method+" "+tmpl] {
			deniedRoutes = append(deniedRoutes, route{method, segs})
			matched = true
		}
		if !matched {
			fail(dp, "%q is neither a Jira operation of the table nor a template of allow.rules%s", entry, routeHint(tbl, method, tableForm(tmpl)))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}

	l := &Allowlist{granted: sortedKeys(granted)}
	tries := map[string]*node{}
	insert := func(method string, segs []segment) *node {
		n := tries[method]
		if n == nil {
			n = &node{}
			tries[method] = n
		}
		for _, s := range segs {
			n = n.child(s)
		}
		return n
	}
	var leaves []*leaf
	for _, op := range tbl.ops {
		for _, v := range versionsOf(op.Path) {
			tmpl := withVersion(op.Path, v)
			segs, err := parseTemplate(tmpl)
			if err != nil {
				return nil, fmt.Errorf("jira operations table: %s: %w", tmpl, err)
			}
			lf := &leaf{template: tmpl, segs: segs, op: op}
			insert(op.Method, segs).leaf = lf
			leaves = append(leaves, lf)
		}
	}
	for _, r := range rules {
		for _, m := range r.methods {
			n := insert(m, r.segs)
			if n.leaf == nil {
				n.leaf = &leaf{template: r.path, segs: r.segs}
				leaves = append(leaves, n.leaf)
			}
			n.leaf.rule = true
		}
	}
	for _, r := range deniedRoutes {
		insert(r.method, r.segs).leaf.denied = true
	}

	allowed := map[string]bool{}
	for _, lf := range leaves {
		lf.reason = verdict(lf, granted, listed, deniedOps)
		lf.decision = Decision{Template: lf.template}
		if lf.op != nil {
			lf.decision.OperationID = lf.op.ID
			lf.decision.Scopes = slices.Clip(lf.op.Scopes)
			if lf.reason == 0 {
				allowed[lf.op.ID] = true
			}
		}
	}
	l.allowed = sortedKeys(allowed)

	for _, m := range sortedKeys(tries) {
		l.tries = append(l.tries, methodTrie{method: m, root: tries[m]})
	}
	for _, t := range l.tries {
		findRivals(t.root)
	}
	return l, nil
}

// AllowedOperations returns the operationIds the allowlist forwards, by
// scope or by allow.rules, on at least one API version, sorted.
func (l *Allowlist) AllowedOperations() []string {
	return slices.Clone(l.allowed)
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
