package jira

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/oxsecurity/oxbroker/config"
)

//go:embed operations.json
var operationsJSON []byte

// scopeFree are the operations forwarded whatever allow.scopes says,
// although Atlassian lists no classic scope for them. getServerInfo (GET
// /rest/api/{2,3}/serverInfo) can be called anonymously, returns only the
// version and build of Jira, and is what clients call first to tell Cloud
// from Data Center. allow.operations and allow.deny still apply to them.
var scopeFree = map[string]bool{"getServerInfo": true}

// apiVersions are the versions under /rest/api/ that the table's
// /rest/api/3 templates stand for. The first is the table's own.
var apiVersions = []string{"3", "2", "latest"}

// apiPrefix is the prefix of the templates that apiVersions apply to.
const apiPrefix = "/rest/api/3/"

// restPrefix is the prefix of every path allow.rules may name: the broker
// forwards Jira's REST APIs, not its web pages or servlets.
const restPrefix = "/rest/"

// httpMethods are the methods allow.rules and a "METHOD /template" entry
// of allow.deny may name (those config.Agent.Validate accepts for rules).
var httpMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}

// operation is one row of the table.
type operation struct {
	Method     string   `json:"method"`
	Path       string   `json:"path"`
	ID         string   `json:"operation"`
	Scopes     []string `json:"scopes_classic"`
	Granular   []string `json:"scopes_granular"`
	Deprecated bool     `json:"deprecated"`

	segs []segment
}

// table is operations.json parsed and indexed.
type table struct {
	ops      []*operation
	byID     map[string]*operation
	byRoute  map[string]*operation // "METHOD /template"
	classic  map[string]bool       // every classic scope the table names
	granular map[string]bool       // every granular scope the table names
}

// loadTable parses the embedded table once.
var loadTable = sync.OnceValues(func() (*table, error) {
	var doc struct {
		Operations []*operation `json:"operations"`
	}
	if err := json.Unmarshal(operationsJSON, &doc); err != nil {
		return nil, fmt.Errorf("jira operations table: %w", err)
	}
	t := &table{
		ops:      doc.Operations,
		byID:     make(map[string]*operation, len(doc.Operations)),
		byRoute:  make(map[string]*operation, len(doc.Operations)),
		classic:  map[string]bool{},
		granular: map[string]bool{},
	}
	// shapes holds "METHOD" plus each template's literals with its
	// parameters blanked: two operations of one shape could not be told
	// apart by their paths.
	shapes := map[string]string{}
	for i, op := range t.ops {
		segs, err := parseTemplate(op.Path)
		if err != nil {
			return nil, fmt.Errorf("jira operations table: operations[%d] %s %s: %w", i, op.Method, op.Path, err)
		}
		if op.ID == "" || !slices.Contains(httpMethods, op.Method) {
			return nil, fmt.Errorf("jira operations table: operations[%d]: bad method %q or operation %q", i, op.Method, op.ID)
		}
		route := op.Method + " " + op.Path
		if t.byID[op.ID] != nil || t.byRoute[route] != nil {
			return nil, fmt.Errorf("jira operations table: operations[%d]: %s (%s) is listed twice", i, op.ID, route)
		}
		shape := op.Method + " " + shapeOf(segs)
		if other, dup := shapes[shape]; dup {
			return nil, fmt.Errorf("jira operations table: operations[%d]: %s has the same path template as %s", i, op.ID, other)
		}
		shapes[shape] = op.ID
		op.segs = segs
		t.byID[op.ID] = op
		t.byRoute[route] = op
		for _, s := range op.Scopes {
			t.classic[s] = true
		}
		for _, s := range op.Granular {
			t.granular[s] = true
		}
	}
	return t, nil
})

// Decision describes an allowed request.
type Decision struct {
	// OperationID is the Jira operation the request is, such as
	// "getIssue"; empty for a path that only allow.rules knows.
	OperationID string
	// Template is the path template the request matched, with the
	// request's API version: "/rest/api/2/issue/{issueIdOrKey}". Unlike
	// the path it holds no user data, so it is what request logs carry.
	Template string
	// Scopes are the classic scopes Atlassian lists for the operation.
	// The slice is shared: do not modify it.
	Scopes []string
}

// Reason says why the allowlist refused a request.
type Reason int

// Reasons for a refusal.
const (
	// ReasonUnknownPath: no operation or rule matches the path.
	ReasonUnknownPath Reason = iota + 1
	// ReasonMethodNotAllowed: the path is known, but not with this method.
	ReasonMethodNotAllowed
	// ReasonMissingScope: the operation needs a scope allow.scopes does
	// not grant.
	ReasonMissingScope
	// ReasonNoScope: Atlassian lists no classic scope for the operation.
	ReasonNoScope
	// ReasonNotListed: allow.operations is set and does not list it.
	ReasonNotListed
	// ReasonDenied: allow.deny names it.
	ReasonDenied
)

func (r Reason) String() string {
	switch r {
	case ReasonUnknownPath:
		return "unknown path"
	case ReasonMethodNotAllowed:
		return "method not allowed on this path"
	case ReasonMissingScope:
		return "needs a scope not granted"
	case ReasonNoScope:
		return "no classic scope"
	case ReasonNotListed:
		return "not in allow.operations"
	case ReasonDenied:
		return "denied by allow.deny"
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// DeniedError is the error of a refused request. Its message names the
// operation and what would allow it, and holds nothing secret: the path is
// the caller's own, the scopes are the site's configuration.
type DeniedError struct {
	Method string
	Path   string
	Reason Reason
	// OperationID is the Jira operation the request is, when it is one.
	OperationID string
	// Template is the template the request matched, with its API version;
	// for ReasonMethodNotAllowed, a template the path matches with
	// another method; empty for ReasonUnknownPath.
	Template string
	// RequiredScopes are the operation's classic scopes.
	RequiredScopes []string
	// GrantedScopes are the site's allow.scopes, sorted.
	GrantedScopes []string
	// Methods are the methods the path takes (ReasonMethodNotAllowed).
	Methods []string
	// AlsoMatches is set when the path matches two templates neither of
	// which Jira surely prefers: it is the allowed one, and the fields
	// above describe the refused one.
	AlsoMatches string
}

func (e *DeniedError) Error() string {
	var b strings.Builder
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	switch e.Reason {
	case ReasonUnknownPath:
		b.WriteString(" is not a Jira REST API operation this broker knows")
		return b.String()
	case ReasonMethodNotAllowed:
		b.WriteString(" is not a Jira REST API operation this broker knows; that path takes only ")
		b.WriteString(strings.Join(e.Methods, ", "))
		return b.String()
	}
	if e.AlsoMatches != "" {
		b.WriteString(" matches both ")
		b.WriteString(e.AlsoMatches)
		b.WriteString(" and ")
		b.WriteString(e.Template)
		b.WriteString(", and Jira may serve either; ")
		if e.OperationID != "" {
			b.WriteString(e.OperationID)
		} else {
			b.WriteString("the latter")
		}
	} else if e.OperationID != "" {
		b.WriteString(" is ")
		b.WriteString(e.OperationID)
	} else {
		b.WriteString(" matches allow.rules template ")
		b.WriteString(e.Template)
	}
	switch e.Reason {
	case ReasonMissingScope:
		b.WriteString(", which needs scope")
		if len(e.RequiredScopes) > 1 {
			b.WriteByte('s')
		}
		b.WriteByte(' ')
		b.WriteString(strings.Join(e.RequiredScopes, ", "))
		b.WriteString("; this site allows ")
		if len(e.GrantedScopes) == 0 {
			b.WriteString("no scope")
		} else {
			b.WriteString(strings.Join(e.GrantedScopes, ", "))
		}
	case ReasonNoScope:
		b.WriteString(", for which Atlassian lists no classic scope, so allow.scopes cannot allow it (an allow.rules entry can)")
	case ReasonNotListed:
		b.WriteString(", which is not in this site's allow.operations")
	case ReasonDenied:
		b.WriteString(", which this site's allow.deny refuses")
	default:
		b.WriteString(", which is refused (")
		b.WriteString(e.Reason.String())
		b.WriteByte(')')
	}
	return b.String()
}

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

// methodTrie holds the templates of one method.
type methodTrie struct {
	method string
	root   *node
}

// node is a trie node: one segment of a template.
type node struct {
	lits  map[string]*node // literal segments
	param *node            // a "{name}" segment
	leaf  *leaf            // a template ends here
}

// leaf is one method and template: an operation at one API version, a
// rule, or both.
type leaf struct {
	template string
	segs     []segment
	op       *operation // nil for a template only allow.rules names
	rule     bool       // allow.rules allows it
	denied   bool       // allow.deny names it
	reason   Reason     // zero when allowed
	decision Decision
	// rivals are refused leaves of the same method that match some of this
	// leaf's paths without being less literal at every segment; set only
	// on allowed leaves.
	rivals []*leaf
}

// segment is one segment of a template.
type segment struct {
	text  string // the literal, or the parameter's name
	param bool
}

// policy is the proxy's Policy interface, written out here because jira
// does not import proxy.
type policy interface {
	Allow(method, cleanPath string) error
}

var _ policy = (*Allowlist)(nil)

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

// verdict is why lf is refused, or zero if it is allowed.
func verdict(lf *leaf, granted map[string]bool, listed, deniedOps map[*operation]bool) Reason {
	op := lf.op
	switch {
	case lf.denied || op != nil && deniedOps[op]:
		return ReasonDenied
	case lf.rule:
		return 0
	case scopeFree[op.ID]:
	case len(op.Scopes) == 0:
		return ReasonNoScope
	case len(missingScopes(op, granted)) > 0:
		return ReasonMissingScope
	}
	if len(listed) > 0 && !listed[op] {
		return ReasonNotListed
	}
	return 0
}

// missingScopes are the classic scopes of op that granted lacks.
func missingScopes(op *operation, granted map[string]bool) []string {
	var missing []string
	for _, s := range op.Scopes {
		if !granted[s] {
			missing = append(missing, s)
		}
	}
	return missing
}

// child returns the child of n for s, adding it if needed.
func (n *node) child(s segment) *node {
	if s.param {
		if n.param == nil {
			n.param = &node{}
		}
		return n.param
	}
	if n.lits == nil {
		n.lits = map[string]*node{}
	}
	c := n.lits[s.text]
	if c == nil {
		c = &node{}
		n.lits[s.text] = c
	}
	return c
}

// findRivals sets the rivals of the allowed leaves below root: the refused
// leaves that match a common path while neither is at least as literal as
// the other at every segment.
func findRivals(root *node) {
	byLen := map[int][]*leaf{}
	var walk func(*node)
	walk = func(n *node) {
		if n.leaf != nil {
			byLen[len(n.leaf.segs)] = append(byLen[len(n.leaf.segs)], n.leaf)
		}
		for _, k := range sortedKeys(n.lits) {
			walk(n.lits[k])
		}
		if n.param != nil {
			walk(n.param)
		}
	}
	walk(root)
	for _, group := range byLen {
		for _, a := range group {
			if a.reason != 0 {
				continue
			}
			for _, b := range group {
				if b.reason != 0 && crossing(a.segs, b.segs) {
					a.rivals = append(a.rivals, b)
				}
			}
		}
	}
}

// crossing reports whether templates a and b, of the same length, match a
// common path and each has a literal where the other has a parameter.
func crossing(a, b []segment) bool {
	aLit, bLit := false, false
	for i := range a {
		switch {
		case !a[i].param && !b[i].param:
			if a[i].text != b[i].text {
				return false
			}
		case !a[i].param:
			aLit = true
		case !b[i].param:
			bLit = true
		}
	}
	return aLit && bLit
}

// Allow implements the proxy's Policy: it returns nil when Match allows
// the request, else the *DeniedError.
func (l *Allowlist) Allow(method, path string) error {
	_, err := l.Match(method, path)
	return err
}

// Match decides whether the agent forwards method and path, the decoded
// path relative to the site's base URL ("/rest/api/3/issue/ABC-1", no
// query). It returns the Decision of an allowed request, or a
// *DeniedError. Match does not allocate for an allowed request.
//
// Match expects a path that passed the proxy's checks, but does not rely
// on them: a parameter never matches an empty segment, a segment of dots,
// or one holding "%", "\", ";" or a control character, so such paths are
// refused as unknown.
//
// HEAD is GET without the body (RFC 9110): it is allowed wherever GET is,
// as the same operation with the same scopes, and also where an
// allow.rules entry names HEAD itself. OPTIONS gets nothing of the kind:
// only a rule that names it allows it.
func (l *Allowlist) Match(method, path string) (Decision, error) {
	if method != http.MethodHead {
		return l.match(method, path)
	}
	d, err := l.match(http.MethodGet, path)
	if err == nil {
		return d, nil
	}
	if l.trie(http.MethodHead) != nil {
		if d, herr := l.match(http.MethodHead, path); herr == nil {
			return d, nil
		}
	}
	if de, ok := errors.AsType[*DeniedError](err); ok {
		de.Method = http.MethodHead
	}
	return Decision{}, err
}

// match is Match for one method's trie.
func (l *Allowlist) match(method, path string) (Decision, error) {
	if root := l.trie(method); root != nil {
		if lf := root.lookup(path); lf != nil {
			if lf.reason != 0 {
				return Decision{}, l.denied(method, path, lf)
			}
			for _, r := range lf.rivals {
				if matchSegs(r.segs, path) {
					e := l.denied(method, path, r)
					e.AlsoMatches = lf.template
					return Decision{}, e
				}
			}
			return lf.decision, nil
		}
	}
	e := &DeniedError{Method: method, Path: path, Reason: ReasonUnknownPath, GrantedScopes: l.granted}
	for _, t := range l.tries {
		if t.method == method {
			continue
		}
		if lf := t.root.lookup(path); lf != nil {
			if e.Template == "" {
				e.Template = lf.template
			}
			e.Methods = append(e.Methods, t.method)
		}
	}
	if len(e.Methods) > 0 {
		e.Reason = ReasonMethodNotAllowed
	}
	return Decision{}, e
}

// AllowedOperations returns the operationIds the allowlist forwards, by
// scope or by allow.rules, on at least one API version, sorted.
func (l *Allowlist) AllowedOperations() []string {
	return slices.Clone(l.allowed)
}

// denied is the error for a request that matched lf, which is refused.
func (l *Allowlist) denied(method, path string, lf *leaf) *DeniedError {
	return &DeniedError{
		Method:         method,
		Path:           path,
		Reason:         lf.reason,
		OperationID:    lf.decision.OperationID,
		Template:       lf.template,
		RequiredScopes: lf.decision.Scopes,
		GrantedScopes:  l.granted,
	}
}

// trie returns the root of method's trie, or nil.
func (l *Allowlist) trie(method string) *node {
	for i := range l.tries {
		if l.tries[i].method == method {
			return l.tries[i].root
		}
	}
	return nil
}

// lookup returns the leaf whose template matches p, which is empty or
// starts with "/", preferring literal segments to parameters at each
// segment from the left; nil if none does. Each trie node is visited at
// most once, since a node's depth fixes the segment it is matched with.
func (n *node) lookup(p string) *leaf {
	if p == "" {
		return n.leaf
	}
	if p[0] != '/' {
		return nil
	}
	seg, rest := p[1:], ""
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg, rest = seg[:i], seg[i:]
	}
	if seg == "" {
		return nil
	}
	if c := n.lits[seg]; c != nil {
		if lf := c.lookup(rest); lf != nil {
			return lf
		}
	}
	if n.param != nil && validParam(seg) {
		return n.param.lookup(rest)
	}
	return nil
}

// matchSegs reports whether the template segs matches p.
func matchSegs(segs []segment, p string) bool {
	for _, s := range segs {
		if p == "" || p[0] != '/' {
			return false
		}
		seg, rest := p[1:], ""
		if i := strings.IndexByte(seg, '/'); i >= 0 {
			seg, rest = seg[:i], seg[i:]
		}
		if s.param && !validParam(seg) || !s.param && seg != s.text {
			return false
		}
		p = rest
	}
	return p == ""
}

// validParam reports whether seg may fill a "{name}" segment: it is not
// empty, not made of dots only (a traversal to any server on the way), and
// holds no "%" (a second decoding would change it), "\", ";" (Tomcat's path
// parameters) or control character.
func validParam(seg string) bool {
	dots := true
	for i := 0; i < len(seg); i++ {
		switch c := seg[i]; {
		case c == '.':
		case c == '%', c == '\\', c == ';', c < 0x20, c == 0x7f:
			return false
		default:
			dots = false
		}
	}
	return seg != "" && !dots
}

// parseTemplate splits a path template such as
// "/rest/api/3/issue/{issueIdOrKey}" into segments. A template starts with
// "/", has no empty segment (so no trailing "/"), and each segment is
// either a parameter "{name}" or a literal of RFC 3986 path characters
// other than "%" and ";" that is not made of dots only.
func parseTemplate(t string) ([]segment, error) {
	if !strings.HasPrefix(t, "/") {
		return nil, errors.New(`a path template must start with "/"`)
	}
	if t == "/" {
		return nil, errors.New("a path template must have at least one segment")
	}
	var segs []segment
	for s := range strings.SplitSeq(t[1:], "/") {
		switch {
		case s == "":
			return nil, errors.New(`a path template must not have an empty segment ("//" or a trailing "/")`)
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
			name := s[1 : len(s)-1]
			if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isNameRune(r) }) {
				return nil, fmt.Errorf("bad parameter %q: want {name} with letters, digits, '_', '-' or '.'", s)
			}
			segs = append(segs, segment{text: name, param: true})
		case strings.ContainsAny(s, "{}"):
			return nil, fmt.Errorf("segment %q: a parameter must be a whole segment, such as {issueIdOrKey}", s)
		case strings.Trim(s, ".") == "":
			return nil, fmt.Errorf(`segment %q: "." and ".." segments are not allowed`, s)
		default:
			for i := 0; i < len(s); i++ {
				if !isLiteralByte(s[i]) {
					return nil, fmt.Errorf("segment %q: byte %q is not allowed in a path template", s, s[i])
				}
			}
			segs = append(segs, segment{text: s})
		}
	}
	return segs, nil
}

func isNameRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-' || r == '.'
}

// isLiteralByte reports whether c may appear in a literal segment of a
// template: RFC 3986 pchar without "%" (no escapes) and ";" (which the
// proxy refuses).
func isLiteralByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,=:@", c) >= 0
}

// versionsOf returns the API versions a table template stands for: its
// own, or for a /rest/api/3 template every one of apiVersions.
func versionsOf(tmpl string) []string {
	if strings.HasPrefix(tmpl, apiPrefix) {
		return apiVersions
	}
	return []string{""}
}

// withVersion returns the /rest/api/3 template tmpl at version v; other
// templates, and v == "", as they are.
func withVersion(tmpl, v string) string {
	rest, ok := strings.CutPrefix(tmpl, apiPrefix)
	if !ok || v == "" {
		return tmpl
	}
	return "/rest/api/" + v + "/" + rest
}

// tableForm turns a /rest/api/{2,latest} template into the table's
// /rest/api/3 form, so that a deny entry may name an operation in the
// version its site uses; other templates stay as they are.
func tableForm(tmpl string) string {
	for _, v := range apiVersions[1:] {
		if rest, ok := strings.CutPrefix(tmpl, "/rest/api/"+v+"/"); ok {
			return apiPrefix + rest
		}
	}
	return tmpl
}

// routeHint helps with a "METHOD /template" that names no operation: the
// table's spelling of the same template, or the methods it takes.
func routeHint(tbl *table, method, tmpl string) string {
	segs, err := parseTemplate(tmpl)
	if err != nil {
		return ""
	}
	var methods []string
	for _, op := range tbl.ops {
		if !sameShape(op.segs, segs) {
			continue
		}
		if op.Method == method {
			return fmt.Sprintf(" (did you mean %s %s?)", op.Method, op.Path)
		}
		methods = append(methods, op.Method)
	}
	if len(methods) > 0 {
		slices.Sort(methods)
		return fmt.Sprintf(" (that template takes only %s)", strings.Join(methods, ", "))
	}
	return ""
}

// covers reports whether a rule's template segs is op's template at one of
// its API versions, whatever the parameters' names.
func covers(segs []segment, op *operation) bool {
	for _, v := range versionsOf(op.Path) {
		if opSegs, err := parseTemplate(withVersion(op.Path, v)); err == nil && sameShape(segs, opSegs) {
			return true
		}
	}
	return false
}

// shapeOf writes segs with every parameter as "{}".
func shapeOf(segs []segment) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		if s.param {
			b.WriteString("{}")
		} else {
			b.WriteString(s.text)
		}
	}
	return b.String()
}

// sameShape reports whether two templates have the same literals and
// parameters at the same places, whatever the parameters' names.
func sameShape(a, b []segment) bool {
	return slices.EqualFunc(a, b, func(x, y segment) bool {
		return x.param == y.param && (x.param || x.text == y.text)
	})
}

// didYouMean suggests the candidate closest to s, if one is close.
func didYouMean(s string, candidates []string) string {
	best, bestDist := "", len(s)/3+1
	for _, c := range candidates {
		if strings.EqualFold(c, s) {
			return fmt.Sprintf(" (did you mean %s?)", c)
		}
		if d := editDistance(s, c, bestDist); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance of a and b, or limit when it is
// at least limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
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
