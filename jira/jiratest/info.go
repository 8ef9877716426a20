package jiratest

import (
	"net/http"
	"strings"
	"time"
)

func (s *Server) myself(w http.ResponseWriter, r *http.Request, c call) {
	me := c.userJSON(c.user)
	me.EmailAddress = c.user.email
	writeJSON(w, http.StatusOK, struct {
		userJSON
		Locale string `json:"locale"`
	}{me, "en_US"})
}

func (s *Server) serverInfo(w http.ResponseWriter, r *http.Request, c call) {
	writeJSON(w, http.StatusOK, struct {
		BaseURL        string            `json:"baseUrl"`
		DisplayURL     string            `json:"displayUrl"`
		Version        string            `json:"version"`
		VersionNumbers []int             `json:"versionNumbers"`
		DeploymentType string            `json:"deploymentType"`
		BuildNumber    int               `json:"buildNumber"`
		BuildDate      string            `json:"buildDate"`
		ServerTime     string            `json:"serverTime"`
		SCMInfo        string            `json:"scmInfo"`
		ServerTitle    string            `json:"serverTitle"`
		DefaultLocale  map[string]string `json:"defaultLocale"`
		ServerTimeZone string            `json:"serverTimeZone"`
	}{
		BaseURL:        c.site,
		DisplayURL:     c.site,
		Version:        "1001.0.0-SNAPSHOT",
		VersionNumbers: []int{1001, 0, 0},
		DeploymentType: "Cloud",
		BuildNumber:    100295,
		BuildDate:      "2025-06-02T00:00:00.000+0000",
		ServerTime:     jiraTime(time.Now()),
		SCMInfo:        "6ad3bbd4b9c3cbd7c3b3e0f6bd8a0d7fd0f4f1a2",
		ServerTitle:    "Jira",
		DefaultLocale:  map[string]string{"locale": "en_US"},
		ServerTimeZone: "Etc/UTC",
	})
}

type permission struct{ id, name, description string }

// permissions are the project permissions mypermissions knows, the ones a
// Jira "User" role holds and the broker's default scopes need.
var permissions = map[string]permission{
	"BROWSE_PROJECTS":    {"10", "Browse Projects", "Ability to browse projects and the issues within them."},
	"CREATE_ISSUES":      {"11", "Create Issues", "Ability to create issues."},
	"EDIT_ISSUES":        {"12", "Edit Issues", "Ability to edit issues."},
	"ASSIGN_ISSUES":      {"13", "Assign Issues", "Ability to assign issues to other people."},
	"RESOLVE_ISSUES":     {"14", "Resolve Issues", "Ability to resolve and reopen issues."},
	"ADD_COMMENTS":       {"15", "Add Comments", "Ability to comment on issues."},
	"DELETE_ISSUES":      {"16", "Delete Issues", "Ability to delete issues."},
	"CREATE_ATTACHMENTS": {"19", "Create Attachments", "Users with this permission may create attachments."},
	"TRANSITION_ISSUES":  {"46", "Transition Issues", "Ability to transition issues."},
}

func (s *Server) myPermissions(w http.ResponseWriter, r *http.Request, c call) {
	keys := r.URL.Query().Get("permissions")
	if keys == "" {
		badRequest(w, "The 'permissions' query parameter is required.")
		return
	}
	type permissionJSON struct {
		ID             string `json:"id"`
		Key            string `json:"key"`
		Name           string `json:"name"`
		Type           string `json:"type"`
		Description    string `json:"description"`
		HavePermission bool   `json:"havePermission"`
	}
	out := make(map[string]permissionJSON)
	for key := range strings.SplitSeq(keys, ",") {
		key = strings.TrimSpace(key)
		p, ok := permissions[key]
		if !ok {
			writeError(w, http.StatusBadRequest, []string{"Unrecognized permission keys: " + key}, nil)
			return
		}
		out[key] = permissionJSON{p.id, key, p.name, "PROJECT", p.description, !s.deny[key]}
	}
	writeJSON(w, http.StatusOK, map[string]any{"permissions": out})
}
