package proxy

import "testing"

func TestFirstCutPolicy(t *testing.T) {
	tests := []struct {
		method, path string
		allow        bool
	}{
		{"GET", "/rest/api/3/myself", true},
		{"GET", "/rest/api/2/myself", true},
		{"GET", "/rest/api/3/serverInfo", true},
		{"GET", "/rest/api/2/serverInfo", true},
		{"GET", "/rest/api/3/issue/ABC-1", true},
		{"GET", "/rest/api/3/issue/ABC-1/comment", true},
		{"GET", "/rest/api/2/issue/10001/transitions", true},
		{"GET", "/rest/api/3/search/jql", true},
		{"GET", "/rest/api/2/search/jql", true},
		{"GET", "/rest/api/2/search", true},
		{"POST", "/rest/api/3/issue", true},
		{"POST", "/rest/api/2/issue", true},
		{"POST", "/rest/api/3/search/jql", true},
		{"POST", "/rest/api/2/search/jql", true},

		{"GET", "/rest/api/3/search", false},
		{"POST", "/rest/api/2/search", false},
		{"GET", "/rest/api/3/issue", false},
		{"POST", "/rest/api/3/issue/ABC-1", false},
		{"PUT", "/rest/api/3/issue/ABC-1", false},
		{"DELETE", "/rest/api/3/issue/ABC-1", false},
		{"HEAD", "/rest/api/3/myself", false},
		{"get", "/rest/api/3/myself", false},
		{"GET", "/rest/api/4/myself", false},
		{"GET", "/rest/api/1/myself", false},
		{"GET", "/rest/api/33/myself", false},
		{"GET", "/rest/api/3", false},
		{"GET", "/rest/api/", false},
		{"GET", "/rest/api/3/myselfX", false},
		{"GET", "/rest/api/3/issueX/1", false},
		{"GET", "/rest/api/3/project", false},
		{"GET", "/rest/agile/1.0/board", false},
		{"GET", "/secure/admin", false},
		{"GET", "/", false},
		{"GET", "/ex/jira/x/rest/api/3/myself", false},
	}
	for _, tt := range tests {
		err := FirstCutPolicy{}.Allow(tt.method, tt.path)
		if (err == nil) != tt.allow {
			t.Errorf("Allow(%s %s): got %v, want allowed=%v", tt.method, tt.path, err, tt.allow)
		}
	}
}
