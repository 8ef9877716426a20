package jiratest

import (
	"fmt"
	"strings"
)

// The stand-in understands a small part of JQL, enough for the searches
// the broker's tests and demo make:
//
//	clause { AND clause } [ ORDER BY anything ]
//	clause = project = KEY | key = ABC-1 | status = "In Progress"
//	       | summary ~ "words" | description ~ "words" | text ~ "words"
//
// Values are bare words or quoted strings. Anything else (OR, parentheses,
// other fields or operators) is refused with a 400, as Jira refuses JQL it
// cannot parse, rather than answered wrongly.

type query []clause

// jqlError is a message for the errorMessages of a 400 answer, worded as
// Jira words it.
type jqlError string

func (e jqlError) Error() string { return string(e) }

type clause struct {
	field string // project, key, status, summary, description or text
	value string
}

// operators gives the one operator the stand-in supports for each field.
var operators = map[string]string{
	"project": "=", "key": "=", "status": "=",
	"summary": "~", "description": "~", "text": "~",
}

type token struct {
	text   string
	quoted bool // a string literal, never a keyword or operator
}

func (t token) is(keyword string) bool { return !t.quoted && strings.EqualFold(t.text, keyword) }

const (
	opChars    = "=~!<>"
	punctChars = "(),"
)

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j == len(s) {
				return nil, jqlError(fmt.Sprintf("Error in the JQL Query: The quoted string starting at character %d is not terminated.", i+1))
			}
			toks = append(toks, token{text: b.String(), quoted: true})
			i = j + 1
		case strings.IndexByte(opChars, c) >= 0:
			j := i
			for j < len(s) && strings.IndexByte(opChars, s[j]) >= 0 {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		case strings.IndexByte(punctChars, c) >= 0:
			toks = append(toks, token{text: s[i : i+1]})
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r\"'"+opChars+punctChars, rune(s[j])) {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}

// parseJQL parses the supported subset; an empty query selects every
// issue.
func parseJQL(s string) (query, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	var q query
	for i := 0; i < len(toks); {
		if toks[i].is("order") {
			break // ordering is ignored: results come in id order
		}
		if len(toks)-i < 3 {
			return nil, jqlError("Error in the JQL Query: Expecting a field, an operator and a value.")
		}
		field, op, value := toks[i], toks[i+1], toks[i+2]
		name := strings.ToLower(field.text)
		if name == "issuekey" {
			name = "key"
		}
		want, ok := operators[name]
		switch {
		case field.quoted || !ok:
			return nil, jqlError(fmt.Sprintf("Field '%s' is not supported by the Jira stand-in.", field.text))
		case op.text != want || op.quoted:
			return nil, jqlError(fmt.Sprintf("The operator '%s' is not supported by the '%s' field.", op.text, field.text))
		case !value.quoted && (value.text == "" || strings.ContainsAny(value.text, opChars+punctChars)):
			return nil, jqlError(fmt.Sprintf("Error in the JQL Query: Expecting a value but got '%s'.", value.text))
		}
		q = append(q, clause{field: name, value: value.text})
		i += 3
		switch {
		case i == len(toks) || toks[i].is("order"):
		case toks[i].is("and") && i+1 < len(toks):
			i++
		default:
			return nil, jqlError(fmt.Sprintf("Error in the JQL Query: Expecting 'AND' but got '%s'; the Jira stand-in supports only AND.", toks[i].text))
		}
	}
	return q, nil
}

// checkValues refuses, as Jira does, a query naming a project, issue or
// status that does not exist. The caller holds s.mu.
func (s *Server) checkValues(q query) error {
	for _, c := range q {
		switch c.field {
		case "project":
			if s.findProject(c.value) == nil {
				return jqlError(fmt.Sprintf("The value '%s' does not exist for the field 'project'.", c.value))
			}
		case "key":
			if s.lookup(c.value) == nil {
				return jqlError(fmt.Sprintf("An issue with key '%s' does not exist for field 'key'.", c.value))
			}
		case "status":
			if statusIndex(c.value) < 0 {
				return jqlError(fmt.Sprintf("The value '%s' does not exist for the field 'status'.", c.value))
			}
		}
	}
	return nil
}

// findProject returns the project with key or id v. The caller holds s.mu.
func (s *Server) findProject(v string) *project {
	if p := s.projects[strings.ToUpper(v)]; p != nil {
		return p
	}
	for _, p := range s.projects {
		if p.id == v {
			return p
		}
	}
	return nil
}

func statusIndex(v string) int {
	for i, st := range statuses {
		if strings.EqualFold(st.name, v) || st.id == v {
			return i
		}
	}
	return -1
}

func (q query) match(is *issue) bool {
	for _, c := range q {
		if !c.match(is) {
			return false
		}
	}
	return true
}

func (c clause) match(is *issue) bool {
	switch c.field {
	case "project":
		return strings.EqualFold(is.project.key, c.value) || is.project.id == c.value
	case "key":
		return strings.EqualFold(is.key, c.value) || is.id == c.value
	case "status":
		return statusIndex(c.value) == is.status
	case "summary":
		return contains(is.summary, c.value)
	case "description":
		return contains(is.description, c.value)
	default: // text
		if contains(is.summary, c.value) || contains(is.description, c.value) {
			return true
		}
		for _, cm := range is.comments {
			if contains(cm.body, c.value) {
				return true
			}
		}
		return false
	}
}

// contains reports whether text holds every word of words, ignoring case:
// a rough version of Jira's text search.
func contains(text, words string) bool {
	text = strings.ToLower(text)
	for w := range strings.FieldsSeq(strings.ToLower(words)) {
		if !strings.Contains(text, strings.Trim(w, "*")) {
			return false
		}
	}
	return true
}
