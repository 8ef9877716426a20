package jiratest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

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
			if in.typ = pick(v, issueTypes, func(t issueType) (string, string) { return t.id, t.name }); in.typ == nil {
				errs[name] = "Specify a valid issue type"
			}
		case "priority":
			if in.priority = pick(v, priorities, func(p priority) (string, string) { return p.id, p.name }); in.priority == nil {
				errs[name] = "The priority selected is invalid."
			}
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

// pick finds, among things, the index of the one a {"id"} or {"name"}
// reference designates; nil if none does.
func pick[T any](raw json.RawMessage, things []T, idName func(T) (id, name string)) *int {
	var ref struct{ ID, Name string }
	if json.Unmarshal(raw, &ref) != nil {
		return nil
	}
	for i, t := range things {
		id, name := idName(t)
		if (ref.ID != "" && ref.ID == id) || (ref.ID == "" && strings.EqualFold(ref.Name, name)) {
			return &i
		}
	}
	return nil
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

// readIssue renders, with render, the issue that the request's {key}
// names, holding s.mu for reading while it renders (not while the answer
// is written); when there is no such issue it answers 404 and reports
// false.
func readIssue[T any](s *Server, w http.ResponseWriter, r *http.Request, render func(*issue) T) (T, bool) {
	s.mu.RLock()
	is := s.lookup(r.PathValue("key"))
	var v T
	if is != nil {
		v = render(is)
	}
	s.mu.RUnlock()
	if is == nil {
		noIssue(w)
	}
	return v, is != nil
}

// changeIssue runs change on the issue that the request's {key} names,
// holding s.mu for writing; when there is no such issue it answers 404.
func (s *Server) changeIssue(w http.ResponseWriter, r *http.Request, change func(*issue)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if is := s.lookup(r.PathValue("key")); is != nil {
		change(is)
	} else {
		noIssue(w)
	}
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
	if v, ok := readIssue(s, w, r, c.issueJSON); ok {
		writeJSON(w, http.StatusOK, v)
	}
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
	s.changeIssue(w, r, func(is *issue) {
		is.apply(in, time.Now())
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Server) deleteIssue(w http.ResponseWriter, r *http.Request, c call) {
	s.changeIssue(w, r, func(is *issue) {
		delete(s.issues, is.key)
		delete(s.issueIDs, is.id)
		for _, a := range is.attachments {
			delete(s.attachments, a.info.ID)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Server) getTransitions(w http.ResponseWriter, r *http.Request, c call) {
	if out, ok := readIssue(s, w, r, c.transitionsJSON); ok {
		writeJSON(w, http.StatusOK, map[string]any{"expand": "transitions", "transitions": out})
	}
}

// transitionsJSON are the transitions available on is. Every transition
// is global, available from any status, as in a team-managed project's
// default workflow.
func (c call) transitionsJSON(is *issue) []transitionJSON {
	out := make([]transitionJSON, len(transitionIDs))
	for i, id := range transitionIDs {
		out[i] = transitionJSON{
			ID: id, Name: statuses[i].name, To: c.statusJSON(statuses[i]),
			IsGlobal: true, IsAvailable: true,
		}
	}
	return out
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
	s.changeIssue(w, r, func(is *issue) {
		now := time.Now()
		if is.status != to {
			is.status = to
			is.statusDate = now
		}
		is.updated = now
		w.WriteHeader(http.StatusNoContent)
	})
}
