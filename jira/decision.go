package jira

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
)

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

// policy is the proxy's Policy interface, written out here because jira
// does not import proxy.
type policy interface {
	Allow(method, cleanPath string) error
}

var _ policy = (*Allowlist)(nil)

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
