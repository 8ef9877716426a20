package jiratest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (s *Server) getComments(w http.ResponseWriter, r *http.Request, c call) {
	page, ok := readIssue(s, w, r, c.commentPage)
	if !ok {
		return
	}
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
	s.changeIssue(w, r, func(is *issue) {
		now := time.Now()
		cm := comment{id: strconv.Itoa(s.nextComment), author: c.user, body: text, created: now, updated: now}
		s.nextComment++
		is.comments = append(is.comments, cm)
		is.updated = cm.created
		v := c.commentJSON(is, cm)
		w.Header().Set("Location", v.Self)
		writeJSON(w, http.StatusCreated, v)
	})
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
