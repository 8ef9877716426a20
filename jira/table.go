package jira

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
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
