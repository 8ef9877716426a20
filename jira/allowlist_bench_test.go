package jira

import (
	"testing"

	"github.com/oxsecurity/oxbroker/config"
)

// benchRequests is a mix like the OX connector's traffic, with a refused
// admin path and a Data Center v2 path.
var benchRequests = []struct {
	name, method, path string
	allowed            bool
}{
	{"issue-get", "GET", "/rest/api/3/issue/ABC-123", true},
	{"search", "POST", "/rest/api/3/search/jql", true},
	{"transitions", "POST", "/rest/api/3/issue/ABC-123/transitions", true},
	{"comment", "PUT", "/rest/api/3/issue/ABC-123/comment/10042", true},
	{"v2-issue", "GET", "/rest/api/2/issue/ABC-123", true},
	{"ambiguous-checked", "GET", "/rest/api/3/project/type/software", true},
	{"admin-denied", "GET", "/secure/admin/ViewApplicationProperties.jspa", false},
	{"scope-denied", "POST", "/rest/api/3/user", false},
}

// BenchmarkAllowlistMatch measures Match on each request of the mix, and
// on the mix in turn:
//
//	go test -run=NONE -bench=Allowlist -benchmem ./jira/
func BenchmarkAllowlistMatch(b *testing.B) {
	l, err := NewAllowlist(config.Allow{
		Scopes: []string{"read:jira-user", "read:jira-work", "write:jira-work"},
		Rules:  []config.AllowRule{{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board/{boardId}/issue"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range benchRequests {
		if _, err := l.Match(r.method, r.path); (err == nil) != r.allowed {
			b.Fatalf("%s %s: got %v, want allowed %v", r.method, r.path, err, r.allowed)
		}
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = l.Match(r.method, r.path)
			}
		})
	}
	b.Run("mix", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r := &benchRequests[i%len(benchRequests)]
			_, _ = l.Match(r.method, r.path)
			i++
		}
	})
}

// BenchmarkNewAllowlist measures building an allowlist (once per site at
// start and reload), the table being parsed already.
func BenchmarkNewAllowlist(b *testing.B) {
	a := config.Allow{Scopes: []string{"read:jira-user", "read:jira-work", "write:jira-work"}}
	if _, err := NewAllowlist(a); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewAllowlist(a); err != nil {
			b.Fatal(err)
		}
	}
}
