package jiratest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
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

// issueInput is the parsed "fields" object of a create or edit request;
// nil means the field was not given.
type issueInput struct {
	project     *projectRef
	summary     *string
	description *string
	typ         *int
	priority    *int
	labels      []string // nil when not given
}

type projectRef struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// parseFields reads the fields of a create or edit request, collecting
// per-field errors worded as Jira words them.
func parseFields(raw map[string]json.RawMessage) (issueInput, map[string]string) {
	var in issueInput
	errs := make(map[string]string)
	for name, v := range raw {
		switch name {
		case "project":
			var p projectRef
			if json.Unmarshal(v, &p) != nil {
				errs[name] = "Specify a valid project ID or key"
				continue
			}
			in.project = &p
		case "summary":
			var sum string
			switch {
			case json.Unmarshal(v, &sum) != nil:
				errs[name] = "Operation value must be a string"
			case strings.TrimSpace(sum) == "":
				errs[name] = "You must specify a summary of the issue."
			case len(sum) > 255:
				errs[name] = "Summary must be less than 255 characters."
			default:
				in.summary = &sum
			}
		case "description":
			text, err := plainText(v)
			if err != nil {
				errs[name] = "Operation value must be an Atlassian Document"
				continue
			}
			in.description = &text
		case "issuetype":
			i, ok := pick(v, len(issueTypes), func(i int) (string, string) { return issueTypes[i].id, issueTypes[i].name })
			if !ok {
				errs[name] = "Specify a valid issue type"
				continue
			}
			in.typ = &i
		case "priority":
			i, ok := pick(v, len(priorities), func(i int) (string, string) { return priorities[i].id, priorities[i].name })
			if !ok {
				errs[name] = "The priority selected is invalid."
				continue
			}
			in.priority = &i
		case "labels":
			in.labels = []string{}
			if json.Unmarshal(v, &in.labels) != nil {
				errs[name] = "Operation value must be an array of strings"
				continue
			}
			for _, l := range in.labels {
				if l == "" || strings.ContainsAny(l, " \t\n") {
					errs[name] = fmt.Sprintf("The label '%s' contains spaces which is invalid.", l)
				}
			}
		default:
			errs[name] = fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", name)
		}
	}
	return in, errs
}

// pick finds, among n named things, the one a {"id"} or {"name"}
// reference designates.
func pick(raw json.RawMessage, n int, idName func(int) (string, string)) (int, bool) {
	var ref struct{ ID, Name string }
	if json.Unmarshal(raw, &ref) != nil {
		return 0, false
	}
	for i := range n {
		id, name := idName(i)
		if (ref.ID != "" && ref.ID == id) || (ref.ID == "" && strings.EqualFold(ref.Name, name)) {
			return i, true
		}
	}
	return 0, false
}

// projectKey is the form Jira gives project keys by default.
var projectKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]{1,9}$`)

// project returns the project ref designates; a valid key not seen before
// creates the project, so tests need not declare projects. The caller
// holds s.mu for writing.
func (s *Server) project(ref projectRef) *project {
	if ref.Key == "" {
		for _, p := range s.projects {
			if p.id == ref.ID {
				return p
			}
		}
		return nil
	}
	key := strings.ToUpper(ref.Key)
	if p := s.projects[key]; p != nil {
		return p
	}
	if !projectKey.MatchString(key) {
		return nil
	}
	p := &project{id: strconv.Itoa(10000 + len(s.projects)), key: key, next: 1}
	s.projects[key] = p
	return p
}

// create adds an issue. The caller holds s.mu for writing.
func (s *Server) create(in issueInput, reporter user) (*issue, map[string]string) {
	errs := make(map[string]string)
	var p *project
	if in.project != nil {
		p = s.project(*in.project)
	}
	if p == nil {
		errs["project"] = "Specify a valid project ID or key"
	}
	if in.summary == nil {
		errs["summary"] = "You must specify a summary of the issue."
	}
	if len(errs) > 0 {
		return nil, errs
	}
	now := time.Now()
	is := &issue{
		seq:        s.nextIssue,
		id:         strconv.Itoa(s.nextIssue),
		key:        fmt.Sprintf("%s-%d", p.key, p.next),
		project:    p,
		typ:        0, // Task, as in a default project
		priority:   defaultPriority,
		reporter:   reporter,
		created:    now,
		statusDate: now,
	}
	s.nextIssue++
	p.next++
	is.apply(in, now)
	s.issues[is.key] = is
	s.issueIDs[is.id] = is
	return is, nil
}

// apply sets the fields in gives. The caller holds s.mu for writing.
func (is *issue) apply(in issueInput, now time.Time) {
	if in.summary != nil {
		is.summary = *in.summary
	}
	if in.description != nil {
		is.description = *in.description
	}
	if in.typ != nil {
		is.typ = *in.typ
	}
	if in.priority != nil {
		is.priority = *in.priority
	}
	if in.labels != nil {
		is.labels = in.labels
	}
	is.updated = now
}

// lookup returns the issue with id or key idOrKey. The caller holds s.mu.
func (s *Server) lookup(idOrKey string) *issue {
	if is := s.issueIDs[idOrKey]; is != nil {
		return is
	}
	return s.issues[strings.ToUpper(idOrKey)]
}

func noIssue(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound,
		[]string{"Issue does not exist or you do not have permission to see it."}, nil)
}

// AddIssue creates an issue in project projectKey, as a POST issue with
// that summary would, and returns its key. It is for tests that need an
// issue without going through HTTP; it panics on an invalid project key.
func (s *Server) AddIssue(projectKey, summary string) (key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is, errs := s.create(issueInput{project: &projectRef{Key: projectKey}, summary: &summary}, s.defaultUser())
	if errs != nil {
		panic(fmt.Sprintf("jiratest: AddIssue(%q, %q): %v", projectKey, summary, errs))
	}
	return is.key
}

func (s *Server) createIssue(w http.ResponseWriter, r *http.Request, c call) {
	var body struct {
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if !decodeJSON(w, r, &body) {
		return
	}
	in, errs := parseFields(body.Fields)
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, nil, errs)
		return
	}
	s.mu.Lock()
	is, errs := s.create(in, c.user)
	s.mu.Unlock()
	if errs != nil {
		writeError(w, http.StatusBadRequest, nil, errs)
		return
	}
	self := c.url("issue/%s", is.id)
	// Jira's REST framework answers a creation with Location, as
	// JAX-RS's Response.created does.
	w.Header().Set("Location", self)
	writeJSON(w, http.StatusCreated, map[string]string{"id": is.id, "key": is.key, "self": self})
}

func (s *Server) getIssue(w http.ResponseWriter, r *http.Request, c call) {
	s.mu.RLock()
	is := s.lookup(r.PathValue("key"))
	if is == nil {
		s.mu.RUnlock()
		noIssue(w)
		return
	}
	v := c.issueJSON(is)
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) editIssue(w http.ResponseWriter, r *http.Request, c call) {
	var body struct {
		Fields map[string]json.RawMessage `json:"fields"`
		Update map[string]json.RawMessage `json:"update"`
	}
	if !decodeJSON(w, r, &body) {
		return
	}
	if len(body.Update) > 0 {
		badRequest(w, "The Jira stand-in supports editing through \"fields\" only, not \"update\".")
		return
	}
	in, errs := parseFields(body.Fields)
	if in.project != nil {
		errs["project"] = "Field 'project' cannot be set. It is not on the appropriate screen, or unknown."
	}
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, nil, errs)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.lookup(r.PathValue("key"))
	if is == nil {
		noIssue(w)
		return
	}
	is.apply(in, time.Now())
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteIssue(w http.ResponseWriter, r *http.Request, c call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.lookup(r.PathValue("key"))
	if is == nil {
		noIssue(w)
		return
	}
	delete(s.issues, is.key)
	delete(s.issueIDs, is.id)
	for _, a := range is.attachments {
		delete(s.attachments, a.info.ID)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getComments(w http.ResponseWriter, r *http.Request, c call) {
	s.mu.RLock()
	is := s.lookup(r.PathValue("key"))
	if is == nil {
		s.mu.RUnlock()
		noIssue(w)
		return
	}
	page := c.commentPage(is)
	s.mu.RUnlock()
	page.Self = "" // the comment list answers without it
	writeJSON(w, http.StatusOK, page)
}

// commentBody reads the text of a comment from a request's JSON body,
// answering 400 as Jira does when it is missing.
func commentBody(w http.ResponseWriter, r *http.Request) (string, bool) {
	var body struct {
		Body json.RawMessage `json:"body"`
	}
	if !decodeJSON(w, r, &body) {
		return "", false
	}
	text, err := plainText(body.Body)
	if err != nil || strings.TrimSpace(text) == "" {
		writeError(w, http.StatusBadRequest, nil, map[string]string{"comment": "Comment body can not be empty!"})
		return "", false
	}
	return text, true
}

func (s *Server) addComment(w http.ResponseWriter, r *http.Request, c call) {
	text, ok := commentBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.lookup(r.PathValue("key"))
	if is == nil {
		noIssue(w)
		return
	}
	now := time.Now()
	cm := comment{id: strconv.Itoa(s.nextComment), author: c.user, body: text, created: now, updated: now}
	s.nextComment++
	is.comments = append(is.comments, cm)
	is.updated = cm.created
	v := c.commentJSON(is, cm)
	w.Header().Set("Location", v.Self)
	writeJSON(w, http.StatusCreated, v)
}

// comment returns the index of comment id of the issue key, writing 404
// if either is missing. The caller holds s.mu.
func (s *Server) comment(w http.ResponseWriter, key, id string) (*issue, int) {
	is := s.lookup(key)
	if is == nil {
		noIssue(w)
		return nil, -1
	}
	i := slices.IndexFunc(is.comments, func(cm comment) bool { return cm.id == id })
	if i < 0 {
		writeError(w, http.StatusNotFound, []string{"Can not find a comment for the id: " + id + "."}, nil)
	}
	return is, i
}

func (s *Server) getComment(w http.ResponseWriter, r *http.Request, c call) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if is, i := s.comment(w, r.PathValue("key"), r.PathValue("id")); i >= 0 {
		writeJSON(w, http.StatusOK, c.commentJSON(is, is.comments[i]))
	}
}

func (s *Server) updateComment(w http.ResponseWriter, r *http.Request, c call) {
	text, ok := commentBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	is, i := s.comment(w, r.PathValue("key"), r.PathValue("id"))
	if i < 0 {
		return
	}
	cm := &is.comments[i]
	cm.body, cm.updated, cm.updateAuthor = text, time.Now(), &c.user
	is.updated = cm.updated
	writeJSON(w, http.StatusOK, c.commentJSON(is, *cm))
}

// searchProjects is GET project/search: the projects by id, a page at a
// time, with self and, unless it is the last page, nextPage, as Jira
// Cloud's paged lists give them.
func (s *Server) searchProjects(w http.ResponseWriter, r *http.Request, c call) {
	q := r.URL.Query()
	start, limit := 0, defaultMaxResults
	for name, dst := range map[string]*int{"startAt": &start, "maxResults": &limit} {
		if v := q.Get(name); v != "" {
			n, ok := atoi(w, name, v)
			if !ok {
				return
			}
			if n < 0 {
				badRequest(w, name+" must not be negative.")
				return
			}
			*dst = n
		}
	}
	limit = min(limit, maxMaxResults)
	s.mu.RLock()
	all := slices.Collect(maps.Values(s.projects))
	slices.SortFunc(all, func(a, b *project) int { return strings.Compare(a.id, b.id) })
	values := make([]projectJSON, 0, limit)
	for _, p := range all[min(start, len(all)):min(start+limit, len(all))] {
		values = append(values, c.projectJSON(p))
	}
	s.mu.RUnlock()
	page := func(at int) string {
		return c.url("project/search") + "?startAt=" + strconv.Itoa(at) + "&maxResults=" + strconv.Itoa(limit)
	}
	resp := struct {
		Self       string        `json:"self"`
		NextPage   string        `json:"nextPage,omitempty"`
		MaxResults int           `json:"maxResults"`
		StartAt    int           `json:"startAt"`
		Total      int           `json:"total"`
		IsLast     bool          `json:"isLast"`
		Values     []projectJSON `json:"values"`
	}{Self: page(start), MaxResults: limit, StartAt: start, Total: len(all), IsLast: start+limit >= len(all), Values: values}
	if !resp.IsLast {
		resp.NextPage = page(start + limit)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) getTransitions(w http.ResponseWriter, r *http.Request, c call) {
	s.mu.RLock()
	is := s.lookup(r.PathValue("key"))
	s.mu.RUnlock()
	if is == nil {
		noIssue(w)
		return
	}
	// Every transition is global, available from any status, as in a
	// team-managed project's default workflow.
	out := make([]transitionJSON, len(transitionIDs))
	for i, id := range transitionIDs {
		out[i] = transitionJSON{
			ID: id, Name: statuses[i].name, To: c.statusJSON(statuses[i]),
			IsGlobal: true, IsAvailable: true,
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"expand": "transitions", "transitions": out})
}

func (s *Server) doTransition(w http.ResponseWriter, r *http.Request, c call) {
	var body struct {
		Transition struct {
			ID string `json:"id"`
		} `json:"transition"`
	}
	if !decodeJSON(w, r, &body) {
		return
	}
	to := slices.Index(transitionIDs, body.Transition.ID)
	if to < 0 {
		badRequest(w, fmt.Sprintf("Transition id '%s' is not valid for this issue.", body.Transition.ID))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.lookup(r.PathValue("key"))
	if is == nil {
		noIssue(w)
		return
	}
	now := time.Now()
	if is.status != to {
		is.status = to
		is.statusDate = now
	}
	is.updated = now
	w.WriteHeader(http.StatusNoContent)
}

// searchParams are the parameters of both search APIs, from the query
// (GET) or the JSON body (POST).
type searchParams struct {
	JQL           string `json:"jql"`
	MaxResults    *int   `json:"maxResults"`
	StartAt       int    `json:"startAt"`       // old search
	NextPageToken string `json:"nextPageToken"` // search/jql
}

const (
	defaultMaxResults = 50
	maxMaxResults     = 100
)

func readSearch(w http.ResponseWriter, r *http.Request) (searchParams, bool) {
	var p searchParams
	if r.Method == http.MethodPost {
		if !decodeJSON(w, r, &p) {
			return p, false
		}
	} else {
		q := r.URL.Query()
		p.JQL, p.NextPageToken = q.Get("jql"), q.Get("nextPageToken")
		if v := q.Get("maxResults"); v != "" {
			n, ok := atoi(w, "maxResults", v)
			if !ok {
				return p, false
			}
			p.MaxResults = &n
		}
		if v := q.Get("startAt"); v != "" {
			n, ok := atoi(w, "startAt", v)
			if !ok {
				return p, false
			}
			p.StartAt = n
		}
	}
	if p.StartAt < 0 || (p.MaxResults != nil && *p.MaxResults < 0) {
		badRequest(w, "startAt and maxResults must not be negative.")
		return p, false
	}
	return p, true
}

// atoi parses the integer query parameter name, answering 400 if it is not
// one.
func atoi(w http.ResponseWriter, name, v string) (int, bool) {
	n, err := strconv.Atoi(v)
	if err != nil {
		badRequest(w, fmt.Sprintf("The value '%s' is invalid for %s.", v, name))
		return 0, false
	}
	return n, true
}

func (p searchParams) limit() int {
	if p.MaxResults == nil {
		return defaultMaxResults
	}
	return min(*p.MaxResults, maxMaxResults)
}

// search renders the issues jql selects, ordered by id, from start on.
func (s *Server) search(c call, jql string, start, limit int) (page []issueJSON, total int, err error) {
	q, err := parseJQL(jql)
	if err != nil {
		return nil, 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkValues(q); err != nil {
		return nil, 0, err
	}
	var found []*issue
	for _, is := range s.issues {
		if q.match(is) {
			found = append(found, is)
		}
	}
	slices.SortFunc(found, func(a, b *issue) int { return a.seq - b.seq })
	for _, is := range found[min(start, len(found)):min(start+limit, len(found))] {
		page = append(page, c.issueJSON(is))
	}
	if page == nil {
		page = []issueJSON{}
	}
	return page, len(found), nil
}

func (s *Server) searchJQL(w http.ResponseWriter, r *http.Request, c call) {
	p, ok := readSearch(w, r)
	if !ok {
		return
	}
	start := 0
	if p.NextPageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.NextPageToken)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			badRequest(w, "The nextPageToken is invalid.")
			return
		}
		start = n
	}
	page, total, err := s.search(c, p.JQL, start, p.limit())
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	resp := struct {
		Issues        []issueJSON `json:"issues"`
		NextPageToken string      `json:"nextPageToken,omitempty"`
		IsLast        bool        `json:"isLast"`
	}{Issues: page, IsLast: start+len(page) >= total}
	if !resp.IsLast {
		// Jira's tokens are opaque; this one only has to survive the round
		// trip.
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(start + len(page))))
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) searchOld(w http.ResponseWriter, r *http.Request, c call) {
	p, ok := readSearch(w, r)
	if !ok {
		return
	}
	page, total, err := s.search(c, p.JQL, p.StartAt, p.limit())
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Expand     string      `json:"expand"`
		StartAt    int         `json:"startAt"`
		MaxResults int         `json:"maxResults"`
		Total      int         `json:"total"`
		Issues     []issueJSON `json:"issues"`
	}{"names,schema", p.StartAt, p.limit(), total, page})
}
