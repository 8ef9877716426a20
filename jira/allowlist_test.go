package jira

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/oxsecurity/oxbroker/config"
)

// defaultScopes are the scopes config gives a site that sets none.
var defaultScopes = []string{"read:jira-user", "read:jira-work", "write:jira-work"}

func newAllowlist(t testing.TB, a config.Allow) *Allowlist {
	t.Helper()
	l, err := NewAllowlist(a)
	if err != nil {
		t.Fatalf("NewAllowlist(%+v): %v", a, err)
	}
	return l
}

func defaultAllowlist(t testing.TB) *Allowlist {
	return newAllowlist(t, config.Allow{Scopes: defaultScopes})
}

// check is one request and what the allowlist should say of it: an
// operationId and template when allowed, a reason when refused.
type check struct {
	method, path string
	wantOp       string // operationId; may be set for refusals too
	wantTemplate string // checked when set
	wantReason   Reason // zero: allowed
}

func runChecks(t *testing.T, l *Allowlist, checks []check) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			d, err := l.Match(c.method, c.path)
			if c.wantReason == 0 {
				if err != nil {
					t.Fatalf("got %v, want allowed as %s", err, c.wantOp)
				}
				if d.OperationID != c.wantOp {
					t.Errorf("got operation %q, want %q", d.OperationID, c.wantOp)
				}
				if c.wantTemplate != "" && d.Template != c.wantTemplate {
					t.Errorf("got template %q, want %q", d.Template, c.wantTemplate)
				}
				if aerr := l.Allow(c.method, c.path); aerr != nil {
					t.Errorf("Allow: got %v, want nil", aerr)
				}
				return
			}
			var de *DeniedError
			if !errors.As(err, &de) {
				t.Fatalf("got %+v, %v; want a *DeniedError (%v)", d, err, c.wantReason)
			}
			if de.Reason != c.wantReason {
				t.Errorf("got reason %v, want %v (%v)", de.Reason, c.wantReason, err)
			}
			if de.OperationID != c.wantOp {
				t.Errorf("got operation %q, want %q (%v)", de.OperationID, c.wantOp, err)
			}
			if c.wantTemplate != "" && de.Template != c.wantTemplate {
				t.Errorf("got template %q, want %q", de.Template, c.wantTemplate)
			}
			if d.OperationID != "" || d.Template != "" || d.Scopes != nil {
				t.Errorf("got decision %+v with the error, want none", d)
			}
			if aerr := l.Allow(c.method, c.path); aerr == nil || aerr.Error() != err.Error() {
				t.Errorf("Allow: got %v, want %v", aerr, err)
			}
		})
	}
}

// TestDefaultScopes is the acceptance table of the allowlist with the
// scopes a service-account token is given.
func TestDefaultScopes(t *testing.T) {
	runChecks(t, defaultAllowlist(t), []check{
		// Allowed.
		{method: "POST", path: "/rest/api/3/issue", wantOp: "createIssue", wantTemplate: "/rest/api/3/issue"},
		{method: "GET", path: "/rest/api/3/search/jql", wantOp: "searchAndReconsileIssuesUsingJql"},
		{method: "POST", path: "/rest/api/3/search/jql", wantOp: "searchAndReconsileIssuesUsingJqlPost"},
		{method: "POST", path: "/rest/api/3/issue/ABC-1/transitions", wantOp: "doTransition", wantTemplate: "/rest/api/3/issue/{issueIdOrKey}/transitions"},
		{method: "GET", path: "/rest/api/3/issue/ABC-1/transitions", wantOp: "getTransitions"},
		{method: "GET", path: "/rest/api/2/issue/ABC-1", wantOp: "getIssue", wantTemplate: "/rest/api/2/issue/{issueIdOrKey}"},
		{method: "GET", path: "/rest/api/latest/issue/ABC-1", wantOp: "getIssue", wantTemplate: "/rest/api/latest/issue/{issueIdOrKey}"},
		{method: "PUT", path: "/rest/api/3/issue/10001", wantOp: "editIssue"},
		{method: "GET", path: "/rest/api/3/myself", wantOp: "getCurrentUser"},
		{method: "GET", path: "/rest/api/2/myself", wantOp: "getCurrentUser"},
		{method: "GET", path: "/rest/api/3/serverInfo", wantOp: "getServerInfo", wantTemplate: "/rest/api/3/serverInfo"},
		{method: "GET", path: "/rest/api/2/serverInfo", wantOp: "getServerInfo"},
		{method: "GET", path: "/rest/api/3/issue/ABC-1/comment", wantOp: "getComments"},
		{method: "POST", path: "/rest/api/3/issue/ABC-1/comment", wantOp: "addComment"},
		{method: "PUT", path: "/rest/api/3/issue/ABC-1/comment/10000", wantOp: "updateComment", wantTemplate: "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"},
		{method: "POST", path: "/rest/api/3/issue/ABC-1/attachments", wantOp: "addAttachment"},
		{method: "POST", path: "/rest/api/2/issue/ABC-1/attachments", wantOp: "addAttachment"},
		{method: "GET", path: "/rest/api/3/attachment/content/10000", wantOp: "getAttachmentContent", wantTemplate: "/rest/api/3/attachment/content/{id}"},
		{method: "GET", path: "/rest/api/3/attachment/10000", wantOp: "getAttachment"},
		{method: "GET", path: "/rest/api/3/mypermissions", wantOp: "getMyPermissions"},
		{method: "GET", path: "/rest/api/3/search", wantOp: "searchForIssuesUsingJql"}, // deprecated, still served
		{method: "POST", path: "/rest/api/3/expression/eval", wantOp: "evaluateJiraExpression"},
		{method: "GET", path: "/rest/api/3/user/bulk", wantOp: "bulkGetUsers"},
		{method: "GET", path: "/rest/api/3/project/ABC", wantOp: "getProject"},

		// Refused: scopes.
		{method: "POST", path: "/rest/api/3/user", wantOp: "createUser", wantReason: ReasonMissingScope},
		{method: "DELETE", path: "/rest/api/3/user", wantOp: "removeUser", wantReason: ReasonMissingScope},
		{method: "GET", path: "/rest/api/3/auditing/record", wantOp: "getAuditRecords", wantReason: ReasonMissingScope},
		{method: "GET", path: "/rest/api/2/auditing/record", wantOp: "getAuditRecords", wantReason: ReasonMissingScope},
		{method: "GET", path: "/rest/api/3/webhook", wantOp: "getDynamicWebhooksForApp", wantReason: ReasonMissingScope},
		{method: "POST", path: "/rest/api/3/webhook", wantOp: "registerDynamicWebhooks", wantReason: ReasonMissingScope},
		{method: "DELETE", path: "/rest/api/3/project/ABC", wantOp: "deleteProject", wantReason: ReasonMissingScope},
		// Refused: Atlassian lists no classic scope.
		{method: "PUT", path: "/rest/api/3/announcementBanner", wantOp: "setBanner", wantReason: ReasonNoScope},
		{method: "GET", path: "/rest/api/3/user/email", wantOp: "getUserEmail", wantReason: ReasonNoScope},
		{method: "GET", path: "/rest/api/3/priority/search", wantOp: "searchPriorities", wantReason: ReasonNoScope},
		{method: "GET", path: "/rest/forge/1/app/properties", wantOp: "getForgeAppPropertyKeys", wantReason: ReasonNoScope},
		{method: "POST", path: "/rest/internal/api/latest/worklog/bulk", wantOp: "getWorklogsByIssueIdAndWorklogId", wantReason: ReasonNoScope},
		// Refused: not Jira REST API operations.
		{method: "GET", path: "/secure/admin/ViewApplicationProperties.jspa", wantReason: ReasonUnknownPath},
		{method: "POST", path: "/secure/admin/user/AddUser.jspa", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/plugins/servlet/oauth/consumer-info", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/../../secure/admin", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/issue/..", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/issue/.", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/issue/ABC-1/../../user", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/issue/%2e%2e", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/issue/ABC-1;x=y", wantReason: ReasonUnknownPath},
		{method: "GET", path: `/rest/api/3/issue/ABC-1\..`, wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/issue/A\x00B", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/issue/", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/myself/", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3//myself", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/issue//transitions", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/4/myself", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/Myself", wantReason: ReasonUnknownPath},
		{method: "GET", path: "rest/api/3/myself", wantReason: ReasonUnknownPath},
		{method: "GET", path: "", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/agile/1.0/board", wantReason: ReasonUnknownPath},
		// Refused: a known path with a method it does not take.
		{method: "PROPFIND", path: "/rest/api/3/issue/ABC-1", wantTemplate: "/rest/api/3/issue/{issueIdOrKey}", wantReason: ReasonMethodNotAllowed},
		{method: "PATCH", path: "/rest/api/3/issue/ABC-1", wantReason: ReasonMethodNotAllowed},
		{method: "get", path: "/rest/api/3/myself", wantReason: ReasonMethodNotAllowed},
		{method: "DELETE", path: "/rest/api/3/myself", wantReason: ReasonMethodNotAllowed},
		{method: "PROPFIND", path: "/secure/admin", wantReason: ReasonUnknownPath},
	})
}

// TestDefaultCount logs how much of the table the default scopes allow.
func TestDefaultCount(t *testing.T) {
	tbl, err := loadTable()
	if err != nil {
		t.Fatal(err)
	}
	l := defaultAllowlist(t)
	n := len(l.AllowedOperations())
	t.Logf("default scopes %v allow %d of the table's %d operations", defaultScopes, n, len(tbl.ops))

	// Count by the rule written out, independently of the trie.
	want := 0
	for _, op := range tbl.ops {
		ok := len(op.Scopes) > 0
		for _, s := range op.Scopes {
			ok = ok && slices.Contains(defaultScopes, s)
		}
		if ok || scopeFree[op.ID] {
			want++
		}
	}
	if n != want {
		t.Errorf("got %d allowed operations, want %d", n, want)
	}
}

// TestEveryOperation matches every operation of the table, at every API
// version, with its template's parameters filled in: the Decision (or the
// refusal) must name that operation and template. Parameter values are
// "X1", "X2"...: no literal of the table is like them, so this checks that
// every template is reachable through the literal-first trie.
func TestEveryOperation(t *testing.T) {
	tbl, err := loadTable()
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl.ops) == 0 {
		t.Fatal("empty table")
	}
	all := sortedKeys(tbl.classic)
	for _, scopes := range [][]string{defaultScopes, all} {
		l := newAllowlist(t, config.Allow{Scopes: scopes})
		for _, op := range tbl.ops {
			for _, v := range versionsOf(op.Path) {
				tmpl := withVersion(op.Path, v)
				path := instantiate(t, tmpl)
				d, err := l.Match(op.Method, path)
				gotOp, gotTmpl := d.OperationID, d.Template
				var de *DeniedError
				switch {
				case errors.As(err, &de):
					gotOp, gotTmpl = de.OperationID, de.Template
					if de.AlsoMatches != "" {
						t.Errorf("%s %s: ambiguous with %s", op.Method, path, de.AlsoMatches)
					}
				case err != nil:
					t.Fatalf("%s %s: %v", op.Method, path, err)
				}
				if gotOp != op.ID || gotTmpl != tmpl {
					t.Errorf("%s %s: got %s %s, want %s %s", op.Method, path, gotOp, gotTmpl, op.ID, tmpl)
				}
				allowed := err == nil
				wantAllowed := scopeFree[op.ID] || len(op.Scopes) > 0 && !slices.ContainsFunc(op.Scopes, func(s string) bool { return !slices.Contains(scopes, s) })
				if allowed != wantAllowed {
					t.Errorf("%s %s (%s, scopes %v) with %v: got allowed %v, want %v (%v)", op.Method, path, op.ID, op.Scopes, scopes, allowed, wantAllowed, err)
				}
			}
		}
	}
}

// TestParamNamedLikeLiteral fills one parameter of each operation with
// each literal that sits beside it in the trie (an issue called
// "createmeta"), so that the literal branch is taken first. Match must
// still find a template, backtracking if needed, and the template it
// chooses must match the path and be the more literal one at the first
// segment where it differs from the operation's.
func TestParamNamedLikeLiteral(t *testing.T) {
	tbl, err := loadTable()
	if err != nil {
		t.Fatal(err)
	}
	l := newAllowlist(t, config.Allow{Scopes: sortedKeys(tbl.classic)})
	cases := 0
	for _, op := range tbl.ops {
		n := l.trie(op.Method)
		for i, s := range op.segs {
			if s.param {
				for _, lit := range sortedKeys(n.lits) {
					path := instantiate(t, op.Path)
					segs := strings.Split(path[1:], "/")
					segs[i] = lit
					path = "/" + strings.Join(segs, "/")
					checkChosen(t, l, op, path)
					cases++
				}
				n = n.param
			} else {
				n = n.lits[s.text]
			}
		}
	}
	t.Logf("%d paths with a parameter named like a literal", cases)
}

func checkChosen(t *testing.T, l *Allowlist, op *operation, path string) {
	t.Helper()
	d, err := l.Match(op.Method, path)
	chosen := d.Template
	var de *DeniedError
	if errors.As(err, &de) {
		chosen = de.Template
		if de.AlsoMatches != "" {
			chosen = de.AlsoMatches
		}
	}
	if chosen == "" {
		t.Errorf("%s %s (%s %s): got %v, want a template", op.Method, path, op.ID, op.Path, err)
		return
	}
	segs, err := parseTemplate(chosen)
	if err != nil {
		t.Fatal(err)
	}
	if !matchSegs(segs, path) {
		t.Errorf("%s %s: chose %s, which does not match", op.Method, path, chosen)
	}
	for i := range segs {
		if segs[i].param != op.segs[i].param {
			if segs[i].param {
				t.Errorf("%s %s: chose %s over the more literal %s", op.Method, path, chosen, op.Path)
			}
			break
		}
	}
}

// instantiate fills a template's parameters with X1, X2, ...
func instantiate(t testing.TB, tmpl string) string {
	t.Helper()
	segs, err := parseTemplate(tmpl)
	if err != nil {
		t.Fatalf("%s: %v", tmpl, err)
	}
	var b strings.Builder
	n := 0
	for _, s := range segs {
		b.WriteByte('/')
		if s.param {
			n++
			fmt.Fprintf(&b, "X%d", n)
		} else {
			b.WriteString(s.text)
		}
	}
	return b.String()
}

// TestLiteralBeatsParam checks templates that overlap: a literal segment
// wins over a parameter at the same place, and the parameter is tried when
// the literal branch fails further down.
func TestLiteralBeatsParam(t *testing.T) {
	runChecks(t, newAllowlist(t, config.Allow{Scopes: []string{"read:jira-user", "read:jira-work", "write:jira-work", "manage:jira-configuration"}}), []check{
		{method: "GET", path: "/rest/api/3/issue/createmeta", wantOp: "getCreateIssueMeta"},
		{method: "GET", path: "/rest/api/3/issue/createmeta/ABC/issuetypes", wantOp: "getCreateIssueMetaIssueTypes"},
		{method: "GET", path: "/rest/api/3/issue/createmeta/ABC/issuetypes/10001", wantOp: "getCreateIssueMetaIssueTypeId"},
		{method: "GET", path: "/rest/api/3/issue/ABC-1", wantOp: "getIssue"},
		// The literal branch "createmeta" has no .../transitions: back to
		// {issueIdOrKey}.
		{method: "GET", path: "/rest/api/3/issue/createmeta/transitions", wantOp: "getTransitions", wantTemplate: "/rest/api/3/issue/{issueIdOrKey}/transitions"},
		// Nor a PUT: editIssue on an issue called "createmeta".
		{method: "PUT", path: "/rest/api/3/issue/createmeta", wantOp: "editIssue"},
		{method: "GET", path: "/rest/api/3/user/bulk", wantOp: "bulkGetUsers"},
		{method: "GET", path: "/rest/api/3/user/search", wantOp: "findUsers"},
		{method: "GET", path: "/rest/api/3/user/X1", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/api/3/priority/search", wantOp: "searchPriorities", wantReason: ReasonNoScope},
		{method: "GET", path: "/rest/api/3/priority/3", wantOp: "getPriority"},
		{method: "GET", path: "/rest/api/3/issuesecurityschemes/level", wantOp: "getSecurityLevels"},
		{method: "GET", path: "/rest/api/3/issuesecurityschemes/10000", wantOp: "getIssueSecurityScheme", wantReason: ReasonMissingScope},
		{method: "DELETE", path: "/rest/api/3/issue/properties/myKey", wantOp: "bulkDeleteIssueProperty"},
		{method: "DELETE", path: "/rest/api/3/issue/ABC-1/watchers", wantOp: "removeWatcher"},
	})
}

// TestAmbiguousTemplates checks a path that two templates match without
// either being the more literal everywhere: it is forwarded only when both
// are allowed.
func TestAmbiguousTemplates(t *testing.T) {
	l := defaultAllowlist(t)
	runChecks(t, l, []check{
		{method: "GET", path: "/rest/api/3/project/type/software", wantOp: "getProjectTypeByKey"},
		{method: "GET", path: "/rest/api/3/project/10000/email", wantOp: "getProjectEmail", wantReason: ReasonMissingScope},
		{method: "GET", path: "/rest/api/3/project/type/email", wantOp: "getProjectEmail", wantTemplate: "/rest/api/3/project/{projectId}/email", wantReason: ReasonMissingScope},
		{method: "GET", path: "/rest/api/2/project/type/email", wantOp: "getProjectEmail", wantTemplate: "/rest/api/2/project/{projectId}/email", wantReason: ReasonMissingScope},
		// Both allowed: the crossing does not matter.
		{method: "GET", path: "/rest/api/3/project/type/versions", wantOp: "getProjectTypeByKey"},
	})
	_, err := l.Match("GET", "/rest/api/3/project/type/email")
	want := "GET /rest/api/3/project/type/email matches both /rest/api/3/project/type/{projectTypeKey} and " +
		"/rest/api/3/project/{projectId}/email, and Jira may serve either; getProjectEmail, which needs scope " +
		"manage:jira-project; this site allows read:jira-user, read:jira-work, write:jira-work"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	var de *DeniedError
	if errors.As(err, &de) && de.AlsoMatches != "/rest/api/3/project/type/{projectTypeKey}" {
		t.Errorf("got AlsoMatches %q, want the allowed template", de.AlsoMatches)
	}

	withProject := newAllowlist(t, config.Allow{Scopes: append(slices.Clone(defaultScopes), "manage:jira-project")})
	runChecks(t, withProject, []check{
		{method: "GET", path: "/rest/api/3/project/type/email", wantOp: "getProjectTypeByKey"},
	})
}

func TestErrorMessages(t *testing.T) {
	l := defaultAllowlist(t)
	narrow := newAllowlist(t, config.Allow{
		Scopes:     defaultScopes,
		Operations: []string{"getIssue"},
		Deny:       []string{"DELETE /rest/agile/1.0/board/{boardId}"},
		Rules:      []config.AllowRule{{Methods: []string{"GET", "DELETE"}, Path: "/rest/agile/1.0/board/{boardId}"}},
	})
	noScopes := newAllowlist(t, config.Allow{})
	tests := []struct {
		l            *Allowlist
		method, path string
		want         string
	}{
		{l, "POST", "/rest/api/3/user", "POST /rest/api/3/user is createUser, which needs scope manage:jira-configuration; " +
			"this site allows read:jira-user, read:jira-work, write:jira-work"},
		{l, "GET", "/rest/api/3/webhook", "GET /rest/api/3/webhook is getDynamicWebhooksForApp, which needs scopes " +
			"manage:jira-webhook, read:jira-work; this site allows read:jira-user, read:jira-work, write:jira-work"},
		{noScopes, "GET", "/rest/api/3/myself", "GET /rest/api/3/myself is getCurrentUser, which needs scope read:jira-user; this site allows no scope"},
		{l, "GET", "/secure/admin/x", "GET /secure/admin/x is not a Jira REST API operation this broker knows"},
		{l, "PROPFIND", "/rest/api/3/issue/ABC-1", "PROPFIND /rest/api/3/issue/ABC-1 is not a Jira REST API operation this broker knows; " +
			"that path takes only DELETE, GET, PUT"},
		{l, "PUT", "/rest/api/3/announcementBanner", "PUT /rest/api/3/announcementBanner is setBanner, for which Atlassian lists " +
			"no classic scope, so allow.scopes cannot allow it (an allow.rules entry can)"},
		{narrow, "GET", "/rest/api/3/myself", "GET /rest/api/3/myself is getCurrentUser, which is not in this site's allow.operations"},
		{narrow, "DELETE", "/rest/agile/1.0/board/7", "DELETE /rest/agile/1.0/board/7 matches allow.rules template " +
			"/rest/agile/1.0/board/{boardId}, which this site's allow.deny refuses"},
	}
	for _, tt := range tests {
		_, err := tt.l.Match(tt.method, tt.path)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s %s:\ngot  %v\nwant %s", tt.method, tt.path, err, tt.want)
		}
	}
}

func TestDeniedErrorFields(t *testing.T) {
	_, err := defaultAllowlist(t).Match("POST", "/rest/api/2/user")
	var de *DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a *DeniedError", err)
	}
	want := DeniedError{
		Method: "POST", Path: "/rest/api/2/user", Reason: ReasonMissingScope,
		OperationID: "createUser", Template: "/rest/api/2/user",
		RequiredScopes: []string{"manage:jira-configuration"},
		GrantedScopes:  defaultScopes,
	}
	if fmt.Sprint(*de) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", *de, want)
	}
}

func TestOperations(t *testing.T) {
	l := newAllowlist(t, config.Allow{
		Scopes:     defaultScopes,
		Operations: []string{"getIssue", "searchAndReconsileIssuesUsingJql", "getServerInfo"},
	})
	runChecks(t, l, []check{
		{method: "GET", path: "/rest/api/3/issue/ABC-1", wantOp: "getIssue"},
		{method: "GET", path: "/rest/api/2/issue/ABC-1", wantOp: "getIssue"},
		{method: "GET", path: "/rest/api/3/search/jql", wantOp: "searchAndReconsileIssuesUsingJql"},
		{method: "GET", path: "/rest/api/3/serverInfo", wantOp: "getServerInfo"},
		{method: "POST", path: "/rest/api/3/search/jql", wantOp: "searchAndReconsileIssuesUsingJqlPost", wantReason: ReasonNotListed},
		{method: "POST", path: "/rest/api/3/issue", wantOp: "createIssue", wantReason: ReasonNotListed},
		{method: "PUT", path: "/rest/api/3/issue/ABC-1", wantOp: "editIssue", wantReason: ReasonNotListed},
		// Outside the scopes: that reason comes first.
		{method: "POST", path: "/rest/api/3/user", wantOp: "createUser", wantReason: ReasonMissingScope},
	})
	if got, want := l.AllowedOperations(), []string{"getIssue", "getServerInfo", "searchAndReconsileIssuesUsingJql"}; !slices.Equal(got, want) {
		t.Errorf("got AllowedOperations %v, want %v", got, want)
	}
	narrowed := newAllowlist(t, config.Allow{Scopes: defaultScopes, Operations: []string{"getIssue"}})
	runChecks(t, narrowed, []check{
		{method: "GET", path: "/rest/api/3/serverInfo", wantOp: "getServerInfo", wantReason: ReasonNotListed},
	})
}

func TestDeny(t *testing.T) {
	l := newAllowlist(t, config.Allow{
		Scopes: defaultScopes,
		Deny: []string{
			"deleteIssue",
			"POST /rest/api/3/issue/{issueIdOrKey}/attachments",
			"DELETE /rest/api/2/issue/{issueIdOrKey}/comment/{id}", // the v2 spelling names the same operation
			"createUser", // already outside the scopes
			"getServerInfo",
		},
	})
	runChecks(t, l, []check{
		{method: "DELETE", path: "/rest/api/3/issue/ABC-1", wantOp: "deleteIssue", wantReason: ReasonDenied},
		{method: "DELETE", path: "/rest/api/2/issue/ABC-1", wantOp: "deleteIssue", wantReason: ReasonDenied},
		{method: "DELETE", path: "/rest/api/latest/issue/ABC-1", wantOp: "deleteIssue", wantReason: ReasonDenied},
		{method: "POST", path: "/rest/api/3/issue/ABC-1/attachments", wantOp: "addAttachment", wantReason: ReasonDenied},
		{method: "POST", path: "/rest/api/2/issue/ABC-1/attachments", wantOp: "addAttachment", wantReason: ReasonDenied},
		{method: "DELETE", path: "/rest/api/3/issue/ABC-1/comment/10000", wantOp: "deleteComment", wantReason: ReasonDenied},
		{method: "POST", path: "/rest/api/3/user", wantOp: "createUser", wantReason: ReasonDenied},
		{method: "GET", path: "/rest/api/3/serverInfo", wantOp: "getServerInfo", wantReason: ReasonDenied},
		{method: "GET", path: "/rest/api/3/issue/ABC-1", wantOp: "getIssue"},
		{method: "GET", path: "/rest/api/3/attachment/content/10000", wantOp: "getAttachmentContent"},
		{method: "PUT", path: "/rest/api/3/issue/ABC-1/comment/10000", wantOp: "updateComment"},
	})
}

func TestRules(t *testing.T) {
	l := newAllowlist(t, config.Allow{
		Scopes: defaultScopes,
		Rules: []config.AllowRule{
			{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board"},
			{Methods: []string{"GET", "DELETE"}, Path: "/rest/agile/1.0/board/{boardId}"},
			{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board/{boardId}/issue"},
			{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board/{boardId}/sprint/{sprintId}"},
			// Allowed by rule although outside the scopes.
			{Methods: []string{"GET"}, Path: "/rest/api/3/auditing/record"},
			// A literal beside a rule's parameter.
			{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board/filter/{filterId}"},
		},
		Deny: []string{"DELETE /rest/agile/1.0/board/{boardId}"},
	})
	runChecks(t, l, []check{
		{method: "GET", path: "/rest/agile/1.0/board", wantTemplate: "/rest/agile/1.0/board"},
		{method: "GET", path: "/rest/agile/1.0/board/7", wantTemplate: "/rest/agile/1.0/board/{boardId}"},
		{method: "GET", path: "/rest/agile/1.0/board/7/issue", wantTemplate: "/rest/agile/1.0/board/{boardId}/issue"},
		{method: "GET", path: "/rest/agile/1.0/board/7/sprint/3", wantTemplate: "/rest/agile/1.0/board/{boardId}/sprint/{sprintId}"},
		{method: "GET", path: "/rest/agile/1.0/board/filter/3", wantTemplate: "/rest/agile/1.0/board/filter/{filterId}"},
		{method: "GET", path: "/rest/agile/1.0/board/filter", wantTemplate: "/rest/agile/1.0/board/{boardId}"},
		// Both board/filter/{filterId} and board/{boardId}/issue match; the
		// literal "filter" comes first, and both are allowed.
		{method: "GET", path: "/rest/agile/1.0/board/filter/issue", wantTemplate: "/rest/agile/1.0/board/filter/{filterId}"},
		{method: "GET", path: "/rest/api/3/auditing/record", wantOp: "getAuditRecords", wantTemplate: "/rest/api/3/auditing/record"},
		// Rules apply to the path as written: not to v2.
		{method: "GET", path: "/rest/api/2/auditing/record", wantOp: "getAuditRecords", wantReason: ReasonMissingScope},
		{method: "DELETE", path: "/rest/agile/1.0/board/7", wantTemplate: "/rest/agile/1.0/board/{boardId}", wantReason: ReasonDenied},
		{method: "POST", path: "/rest/agile/1.0/board", wantReason: ReasonMethodNotAllowed},
		{method: "GET", path: "/rest/agile/1.0/board/7/epic", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/agile/1.0/board/7/issue/x", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/agile/1.0/board/..", wantReason: ReasonUnknownPath},
		{method: "GET", path: "/rest/agile/1.0/board/", wantReason: ReasonUnknownPath},
		// Everything else is as without rules.
		{method: "GET", path: "/rest/api/3/issue/ABC-1", wantOp: "getIssue"},
	})
}

// TestHead (issue 11, item 2): HEAD is allowed wherever GET is, as the
// same operation with the same scopes, and refused wherever GET is;
// OPTIONS gets nothing of the kind.
func TestHead(t *testing.T) {
	l := newAllowlist(t, config.Allow{
		Scopes: []string{"read:jira-work"},
		Deny:   []string{"getServerInfo"},
		Rules: []config.AllowRule{
			{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board"},
			{Methods: []string{"HEAD"}, Path: "/rest/agile/1.0/sprint/{sprintId}"},
		},
	})
	runChecks(t, l, []check{
		{method: "HEAD", path: "/rest/api/3/issue/ABC-1", wantOp: "getIssue", wantTemplate: "/rest/api/3/issue/{issueIdOrKey}"},
		{method: "HEAD", path: "/rest/api/2/attachment/content/10000", wantOp: "getAttachmentContent"},
		{method: "HEAD", path: "/rest/agile/1.0/board", wantTemplate: "/rest/agile/1.0/board"},
		{method: "HEAD", path: "/rest/agile/1.0/sprint/3", wantTemplate: "/rest/agile/1.0/sprint/{sprintId}"},
		// Refused where GET is, for the same reason.
		{method: "HEAD", path: "/rest/api/3/myself", wantOp: "getCurrentUser", wantReason: ReasonMissingScope},
		{method: "HEAD", path: "/rest/api/3/serverInfo", wantOp: "getServerInfo", wantReason: ReasonDenied},
		{method: "HEAD", path: "/rest/api/3/issue", wantReason: ReasonMethodNotAllowed},
		{method: "HEAD", path: "/secure/admin", wantReason: ReasonUnknownPath},
		// OPTIONS is not GET.
		{method: "OPTIONS", path: "/rest/api/3/issue/ABC-1", wantReason: ReasonMethodNotAllowed},
		{method: "GET", path: "/rest/agile/1.0/sprint/3", wantReason: ReasonMethodNotAllowed},
	})
	_, err := l.Match("HEAD", "/rest/api/3/myself")
	if msg := err.Error(); !strings.HasPrefix(msg, "HEAD /rest/api/3/myself is getCurrentUser, which needs scope read:jira-user") {
		t.Errorf("got %q, want it to name HEAD and the operation's scope", msg)
	}
}

// TestParams checks what a parameter segment accepts.
func TestParams(t *testing.T) {
	l := defaultAllowlist(t)
	for _, key := range []string{"ABC-1", "10001", "~user", "a.b", "..a", "name with space", "é", "a:b", "a@b", "(x)"} {
		if _, err := l.Match("GET", "/rest/api/3/issue/"+key); err != nil {
			t.Errorf("%q: got %v, want allowed", key, err)
		}
	}
	for _, key := range []string{"", ".", "..", "...", "a%2e", "%", `a\b`, "a;b", "a\x00", "a\nb", "a\x7f", "a/b/c/d/e/f"} {
		if _, err := l.Match("GET", "/rest/api/3/issue/"+key); err == nil {
			t.Errorf("%q: got allowed, want refused", key)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		allow config.Allow
		want  []string // "path: message" of each problem, message as a prefix
	}{
		{
			name:  "unknown scope",
			allow: config.Allow{Scopes: []string{"read:jira-user", "read:jira-userr"}},
			want:  []string{`allow.scopes[1]: unknown scope "read:jira-userr" (did you mean read:jira-user?); known classic scopes: manage:jira-configuration, manage:jira-project, manage:jira-webhook, read:jira-user, read:jira-work, write:jira-work`},
		},
		{
			name:  "granular scope",
			allow: config.Allow{Scopes: []string{"read:issue:jira"}},
			want:  []string{`allow.scopes[0]: "read:issue:jira" is a granular scope; the allowlist works with classic scopes:`},
		},
		{
			name:  "unknown operation",
			allow: config.Allow{Scopes: defaultScopes, Operations: []string{"getIssue", "createIssue", "getIssu", "nosuchthing"}},
			want: []string{
				`allow.operations[2]: unknown Jira operation "getIssu" (did you mean getIssue?)`,
				`allow.operations[3]: unknown Jira operation "nosuchthing"`,
			},
		},
		{
			name:  "operation case",
			allow: config.Allow{Scopes: defaultScopes, Operations: []string{"GetIssue"}},
			want:  []string{`allow.operations[0]: unknown Jira operation "GetIssue" (did you mean getIssue?)`},
		},
		{
			name:  "operation outside the scopes",
			allow: config.Allow{Scopes: defaultScopes, Operations: []string{"getIssue", "createUser"}},
			want:  []string{`allow.operations[1]: createUser (POST /rest/api/3/user) needs scope manage:jira-configuration, which allow.scopes does not grant, so it could never be allowed`},
		},
		{
			name:  "operation without classic scope",
			allow: config.Allow{Scopes: defaultScopes, Operations: []string{"setBanner"}},
			want:  []string{`allow.operations[0]: setBanner (PUT /rest/api/3/announcementBanner): Atlassian lists no classic scope for it`},
		},
		{
			name:  "bad deny entries",
			allow: config.Allow{Scopes: defaultScopes, Deny: []string{"deleteIssu", "DELETE", "delete /rest/api/3/issue/{issueIdOrKey}", "DELETE /rest/api/3/issue/{key}", "DELETE /rest/api/3/myself", "DELETE /rest/api/3/issue/{issueIdOrKey}/", "DELETE rest/api/3/issue", "DELETE /rest/api/3/nothing", "", "DELETE  /rest/api/3/issue/{issueIdOrKey}"}},
			want: []string{
				`allow.deny[0]: unknown Jira operation "deleteIssu" (did you mean deleteIssue?)`,
				`allow.deny[1]: unknown Jira operation "DELETE"`,
				`allow.deny[2]: "delete /rest/api/3/issue/{issueIdOrKey}": want an operationId or METHOD /path/template`,
				`allow.deny[3]: "DELETE /rest/api/3/issue/{key}" is neither a Jira operation of the table nor a template of allow.rules (did you mean DELETE /rest/api/3/issue/{issueIdOrKey}?)`,
				`allow.deny[4]: "DELETE /rest/api/3/myself" is neither a Jira operation of the table nor a template of allow.rules (that template takes only GET)`,
				`allow.deny[5]: "DELETE /rest/api/3/issue/{issueIdOrKey}/": a path template must not have an empty segment`,
				`allow.deny[6]: "DELETE rest/api/3/issue": a path template must start with "/"`,
				`allow.deny[7]: "DELETE /rest/api/3/nothing" is neither a Jira operation of the table nor a template of allow.rules`,
				`allow.deny[8]: unknown Jira operation ""`,
				`allow.deny[9]: "DELETE  /rest/api/3/issue/{issueIdOrKey}": a path template must start with "/"`,
			},
		},
		{
			name: "bad rules",
			allow: config.Allow{Scopes: defaultScopes, Rules: []config.AllowRule{
				{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board/{boardId}"},
				{Path: "/rest/agile/1.0/board"},
				{Methods: []string{"GET", "FETCH"}, Path: "/rest/agile/1.0/board"},
				{Methods: []string{"GET"}, Path: "rest/agile/1.0/board"},
				{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board/"},
				{Methods: []string{"GET"}, Path: "/rest/agile/1.0/../board"},
				{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board/{}"},
				{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board/id-{boardId}"},
				{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board/%2e"},
				{Methods: []string{"GET"}, Path: "/secure/admin/x"},
				{Methods: []string{"GET"}, Path: "/"},
			}},
			want: []string{
				`allow.rules[1].methods: required`,
				`allow.rules[2].methods[1]: "FETCH" is not one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS`,
				`allow.rules[3].path: "rest/agile/1.0/board": a path template must start with "/"`,
				`allow.rules[4].path: "/rest/agile/1.0/board/": a path template must not have an empty segment`,
				`allow.rules[5].path: "/rest/agile/1.0/../board": segment "..": "." and ".." segments are not allowed`,
				`allow.rules[6].path: "/rest/agile/1.0/board/{}": bad parameter "{}"`,
				`allow.rules[7].path: "/rest/agile/1.0/board/id-{boardId}": segment "id-{boardId}": a parameter must be a whole segment`,
				`allow.rules[8].path: "/rest/agile/1.0/board/%2e": segment "%2e": byte '%' is not allowed in a path template`,
				`allow.rules[9].path: "/secure/admin/x": must start with /rest/`,
				`allow.rules[10].path: "/": a path template must have at least one segment`,
			},
		},
		{
			name: "deny of a template no rule has",
			allow: config.Allow{Scopes: defaultScopes,
				Rules: []config.AllowRule{{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board/{boardId}"}},
				Deny:  []string{"DELETE /rest/agile/1.0/board/{boardId}"},
			},
			want: []string{`allow.deny[0]: "DELETE /rest/agile/1.0/board/{boardId}" is neither a Jira operation of the table nor a template of allow.rules`},
		},
		{
			name: "a bad scope does not make every operation an error",
			allow: config.Allow{Scopes: []string{"read:jira-wrok"},
				Operations: []string{"getIssue"},
			},
			want: []string{`allow.scopes[0]: unknown scope "read:jira-wrok" (did you mean read:jira-work?)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewAllowlist(tt.allow)
			if l != nil {
				t.Errorf("got an Allowlist with the error, want nil")
			}
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v, want config.Errors", err)
			}
			if len(errs) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i := range min(len(errs), len(tt.want)) {
				if got := errs[i].Error(); !strings.HasPrefix(got, tt.want[i]) {
					t.Errorf("problem %d:\ngot  %s\nwant %s...", i, got, tt.want[i])
				}
			}
		})
	}
}

// TestConfigAccepted checks configs that look odd but are right.
func TestConfigAccepted(t *testing.T) {
	for _, a := range []config.Allow{
		{},
		{Scopes: []string{"read:jira-work", "read:jira-work"}},
		// An operation outside the scopes that a rule allows.
		{Scopes: defaultScopes, Operations: []string{"getAuditRecords"}, Rules: []config.AllowRule{{Methods: []string{"GET"}, Path: "/rest/api/2/auditing/record"}}},
		// A scope-free operation.
		{Scopes: defaultScopes, Operations: []string{"getServerInfo"}},
		// Deny in the table's words, its v2 and latest spellings, a rule's.
		{
			Scopes: defaultScopes,
			Deny:   []string{"DELETE /rest/api/3/issue/{issueIdOrKey}", "DELETE /rest/api/latest/issue/{issueIdOrKey}", "GET /rest/agile/1.0/board", "PUT /rest/api/3/announcementBanner"},
			Rules:  []config.AllowRule{{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board"}},
		},
	} {
		if _, err := NewAllowlist(a); err != nil {
			t.Errorf("NewAllowlist(%+v): got %v, want nil", a, err)
		}
	}
}

// TestTemplates checks that every template of the table parses and that
// the table's shape is what the allowlist assumes.
func TestTemplates(t *testing.T) {
	tbl, err := loadTable()
	if err != nil {
		t.Fatal(err)
	}
	deprecated := 0
	for _, op := range tbl.ops {
		if op.segs == nil {
			t.Errorf("%s %s: not parsed", op.Method, op.Path)
		}
		if !strings.HasPrefix(op.Path, restPrefix) {
			t.Errorf("%s %s: outside %s", op.Method, op.Path, restPrefix)
		}
		if op.Deprecated {
			deprecated++
		}
	}
	t.Logf("%d operations, %d deprecated, classic scopes %v", len(tbl.ops), deprecated, sortedKeys(tbl.classic))
}

func TestMatchDoesNotAllocate(t *testing.T) {
	l := defaultAllowlist(t)
	for _, p := range []string{"/rest/api/3/issue/ABC-1", "/rest/api/2/search/jql", "/rest/api/3/project/type/software", "/rest/api/3/issue/ABC-1/comment/10000"} {
		n := testing.AllocsPerRun(100, func() {
			if _, err := l.Match("GET", p); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("GET %s: got %v allocations, want 0", p, n)
		}
		if n := testing.AllocsPerRun(100, func() { l.Match("HEAD", p) }); n != 0 {
			t.Errorf("HEAD %s: got %v allocations, want 0", p, n)
		}
	}
}

func TestReasonString(t *testing.T) {
	for r, want := range map[Reason]string{
		ReasonUnknownPath:      "unknown path",
		ReasonMethodNotAllowed: "method not allowed on this path",
		ReasonMissingScope:     "needs a scope not granted",
		ReasonNoScope:          "no classic scope",
		ReasonNotListed:        "not in allow.operations",
		ReasonDenied:           "denied by allow.deny",
		0:                      "Reason(0)",
	} {
		if got := r.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// FuzzAllowlistMatch checks that Match never panics and that what it
// allows is a path the proxy's checks would pass, matching its template
// segment for segment.
func FuzzAllowlistMatch(f *testing.F) {
	l := newAllowlist(f, config.Allow{
		Scopes: defaultScopes,
		Rules: []config.AllowRule{
			{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board/{boardId}/issue"},
		},
	})
	for _, seed := range [][2]string{
		{"GET", "/rest/api/3/issue/ABC-1"},
		{"GET", "/rest/api/3/issue/.."},
		{"POST", "/rest/api/3/user"},
		{"HEAD", "/rest/api/3/issue/ABC-1"},
		{"HEAD", "/rest/api/3/user/bulk"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		d, err := l.Match(method, path)
		if aerr := l.Allow(method, path); (aerr == nil) != (err == nil) {
			t.Fatalf("Allow and Match disagree: %v, %v", aerr, err)
		}
		if err != nil {
			var de *DeniedError
			if !errors.As(err, &de) {
				t.Fatalf("got %T %v, want a *DeniedError", err, err)
			}
			if de.Method != method || de.Path != path || de.Reason == 0 {
				t.Fatalf("got %+v for %q %q", de, method, path)
			}
			_ = de.Error()
			return
		}
		if d.Template == "" {
			t.Fatalf("%s %q: allowed with no template", method, path)
		}
		if !strings.HasPrefix(path, "/rest/") {
			t.Fatalf("%s %q: allowed outside /rest/", method, path)
		}
		if strings.ContainsAny(path, "%\\;\x00") {
			t.Fatalf("%s %q: allowed with %%, \\, ; or NUL", method, path)
		}
		pathSegs := strings.Split(path[1:], "/")
		for _, s := range pathSegs {
			if s == "" || strings.Trim(s, ".") == "" {
				t.Fatalf("%s %q: allowed with an empty or dot segment", method, path)
			}
		}
		tmplSegs, err := parseTemplate(d.Template)
		if err != nil {
			t.Fatalf("%s %q: template %q: %v", method, path, d.Template, err)
		}
		if len(tmplSegs) != len(pathSegs) {
			t.Fatalf("%s %q: template %q has %d segments, path %d", method, path, d.Template, len(tmplSegs), len(pathSegs))
		}
		for i, s := range tmplSegs {
			if !s.param && s.text != pathSegs[i] {
				t.Fatalf("%s %q: segment %d is %q, template %q says %q", method, path, i, pathSegs[i], d.Template, s.text)
			}
		}
	})
}
