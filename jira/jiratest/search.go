package jiratest

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

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
