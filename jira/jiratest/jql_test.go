package jiratest

import (
	"fmt"
	"testing"
)

func TestParseJQL(t *testing.T) {
	tests := []struct {
		jql  string
		want string // the clauses, or "error"
	}{
		{"", "[]"},
		{"project = ABC", "[{project ABC}]"},
		{"PROJECT=abc and Key = 'ABC-1'", "[{project abc} {key ABC-1}]"},
		{`issuekey = ABC-1 ORDER BY created DESC`, "[{key ABC-1}]"},
		{`text ~ "say \"hi\""`, `[{text say "hi"}]`},
		{"order by key", "[]"},
		{"project = ABC AND", "error"},
		{"project = ABC OR key = ABC-1", "error"},
		{"project in (ABC, XYZ)", "error"},
		{"project != ABC", "error"},
		{"text = word", "error"},
		{`"project" = ABC`, "error"},
		{"project = =", "error"},
		{"labels = ox", "error"},
		{`summary ~ "open`, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.jql, func(t *testing.T) {
			q, err := parseJQL(tt.jql)
			got := fmt.Sprint(q)
			if q == nil {
				got = "[]"
			}
			if err != nil {
				got = "error"
			}
			if got != tt.want {
				t.Errorf("got %s (%v), want %s", got, err, tt.want)
			}
		})
	}
}

func FuzzParseJQL(f *testing.F) {
	for _, s := range []string{
		"project = ABC AND text ~ \"x\" ORDER BY created",
		"key = 'ABC-1'", `summary ~ "a\"b"`, "project in (A, B)", "\"", "= ~ !=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := parseJQL(s)
		if err != nil {
			return
		}
		for _, c := range q {
			if _, ok := operators[c.field]; !ok {
				t.Errorf("parseJQL(%q) gave field %q", s, c.field)
			}
		}
	})
}
