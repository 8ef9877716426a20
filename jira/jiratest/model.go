package jiratest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"
)

// This file holds the stand-in's data and the JSON shapes Jira gives it.
// Field names and order follow Jira Cloud's answers, so that a response
// has the size and look of a real one.

type user struct {
	accountID   string
	email       string
	name        string
	accountType string // "app" for service accounts, "atlassian" for people
}

// defaultEmail identifies the caller when the stand-in checks no
// credentials, and a Bearer credential that names no user.
const defaultEmail = "oxbroker-standin@serviceaccount.atlassian.com"

// userFor derives a stable identity from a credential: the same email
// always has the same accountId.
func userFor(c Credential) user {
	email := c.User
	if email == "" {
		email = defaultEmail
	}
	sum := sha256.Sum256([]byte(email))
	h := hex.EncodeToString(sum[:16])
	u := user{
		accountID:   "712020:" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:],
		email:       email,
		accountType: "atlassian",
	}
	u.name, _, _ = strings.Cut(email, "@")
	if c.Scheme == SchemeBearer {
		u.accountType = "app"
	}
	return u
}

type project struct {
	id   string
	key  string
	next int // number of the project's next issue key
}

type status struct {
	id, name, description string
	category              statusCategory
}

type statusCategory struct {
	ID        int    `json:"id"`
	Key       string `json:"key"`
	ColorName string `json:"colorName"`
	Name      string `json:"name"`
}

// statuses is the workflow of every issue; transition i+1 (ids 11, 21,
// 31) leads to statuses[i].
var statuses = []status{
	{"10000", "To Do", "", statusCategory{2, "new", "blue-gray", "To Do"}},
	{"3", "In Progress", "This issue is being actively worked on at the moment by the assignee.",
		statusCategory{4, "indeterminate", "yellow", "In Progress"}},
	{"10001", "Done", "", statusCategory{3, "done", "green", "Done"}},
}

var transitionIDs = []string{"11", "21", "31"}

type issueType struct {
	id, name, description string
	avatarID, hierarchy   int
}

var issueTypes = []issueType{
	{"10001", "Task", "A small, distinct piece of work.", 10318, 0},
	{"10002", "Bug", "A problem or error.", 10303, 0},
	{"10003", "Story", "Functionality or a feature expressed as a user goal.", 10315, 0},
	{"10000", "Epic", "A collection of related bugs, stories, and tasks.", 10307, 1},
}

type priority struct{ id, name string }

var priorities = []priority{
	{"1", "Highest"}, {"2", "High"}, {"3", "Medium"}, {"4", "Low"}, {"5", "Lowest"},
}

const defaultPriority = 2 // Medium

type issue struct {
	seq         int // the id as a number, for ordering
	id, key     string
	project     *project
	summary     string
	description string // plain text; v3 answers wrap it in a document
	typ         int    // index in issueTypes
	priority    int    // index in priorities
	status      int    // index in statuses
	labels      []string
	reporter    user
	created     time.Time
	updated     time.Time
	statusDate  time.Time
	comments    []comment
	attachments []*attachment
}

type comment struct {
	id           string
	author       user
	updateAuthor *user // nil until edited
	body         string
	created      time.Time
	updated      time.Time
}

// jiraTime formats t as Jira does.
func jiraTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000-0700") }

type userJSON struct {
	Self         string            `json:"self"`
	AccountID    string            `json:"accountId"`
	EmailAddress string            `json:"emailAddress,omitempty"`
	AvatarURLs   map[string]string `json:"avatarUrls"`
	DisplayName  string            `json:"displayName"`
	Active       bool              `json:"active"`
	TimeZone     string            `json:"timeZone"`
	AccountType  string            `json:"accountType"`
}

// userJSON renders u as issues and comments show users: without the email
// address, which Jira shows only to the user and to admins.
func (c call) userJSON(u user) userJSON {
	// People have a Gravatar falling back to their initials; service
	// accounts only the initials.
	initials := strings.ToUpper(u.name[:min(2, len(u.name))]) + "-0.png"
	avatar := "https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/initials/" + initials
	if u.accountType != "app" {
		sum := sha256.Sum256([]byte(u.email))
		avatar = "https://secure.gravatar.com/avatar/" + hex.EncodeToString(sum[:16]) + "?d=" + url.QueryEscape(avatar)
	}
	return userJSON{
		Self:        c.url("user?accountId=%s", url.QueryEscape(u.accountID)),
		AccountID:   u.accountID,
		AvatarURLs:  map[string]string{"48x48": avatar, "24x24": avatar, "16x16": avatar, "32x32": avatar},
		DisplayName: u.name,
		Active:      true,
		TimeZone:    "Etc/UTC",
		AccountType: u.accountType,
	}
}

type issueJSON struct {
	Expand string     `json:"expand"`
	ID     string     `json:"id"`
	Self   string     `json:"self"`
	Key    string     `json:"key"`
	Fields fieldsJSON `json:"fields"`
}

type fieldsJSON struct {
	StatusCategoryChangeDate string           `json:"statuscategorychangedate"`
	IssueType                issueTypeJSON    `json:"issuetype"`
	Project                  projectJSON      `json:"project"`
	FixVersions              []any            `json:"fixVersions"`
	Resolution               any              `json:"resolution"`
	ResolutionDate           any              `json:"resolutiondate"`
	Watches                  watchesJSON      `json:"watches"`
	Created                  string           `json:"created"`
	Priority                 priorityJSON     `json:"priority"`
	Labels                   []string         `json:"labels"`
	Versions                 []any            `json:"versions"`
	IssueLinks               []any            `json:"issuelinks"`
	Assignee                 *userJSON        `json:"assignee"`
	Updated                  string           `json:"updated"`
	Status                   statusJSON       `json:"status"`
	Components               []any            `json:"components"`
	Description              any              `json:"description"`
	Attachment               []attachmentJSON `json:"attachment"`
	Summary                  string           `json:"summary"`
	Creator                  userJSON         `json:"creator"`
	Subtasks                 []any            `json:"subtasks"`
	Reporter                 userJSON         `json:"reporter"`
	Progress                 progressJSON     `json:"progress"`
	Votes                    votesJSON        `json:"votes"`
	Comment                  commentPageJSON  `json:"comment"`
	DueDate                  any              `json:"duedate"`
	WorkRatio                int              `json:"workratio"`

	// Fields a plain issue has no value for; Jira lists them all the same.
	TimeSpent                     any          `json:"timespent"`
	AggregateTimeSpent            any          `json:"aggregatetimespent"`
	TimeEstimate                  any          `json:"timeestimate"`
	AggregateTimeEstimate         any          `json:"aggregatetimeestimate"`
	TimeOriginalEstimate          any          `json:"timeoriginalestimate"`
	AggregateTimeOriginalEstimate any          `json:"aggregatetimeoriginalestimate"`
	AggregateProgress             progressJSON `json:"aggregateprogress"`
	TimeTracking                  struct{}     `json:"timetracking"`
	Environment                   any          `json:"environment"`
	Security                      any          `json:"security"`
	LastViewed                    any          `json:"lastViewed"`
}

type issueTypeJSON struct {
	Self           string `json:"self"`
	ID             string `json:"id"`
	Description    string `json:"description"`
	IconURL        string `json:"iconUrl"`
	Name           string `json:"name"`
	Subtask        bool   `json:"subtask"`
	AvatarID       int    `json:"avatarId"`
	HierarchyLevel int    `json:"hierarchyLevel"`
}

type projectJSON struct {
	Self           string            `json:"self"`
	ID             string            `json:"id"`
	Key            string            `json:"key"`
	Name           string            `json:"name"`
	ProjectTypeKey string            `json:"projectTypeKey"`
	Simplified     bool              `json:"simplified"`
	AvatarURLs     map[string]string `json:"avatarUrls"`
}

type watchesJSON struct {
	Self       string `json:"self"`
	WatchCount int    `json:"watchCount"`
	IsWatching bool   `json:"isWatching"`
}

type votesJSON struct {
	Self     string `json:"self"`
	Votes    int    `json:"votes"`
	HasVoted bool   `json:"hasVoted"`
}

type progressJSON struct {
	Progress int `json:"progress"`
	Total    int `json:"total"`
}

type priorityJSON struct {
	Self    string `json:"self"`
	IconURL string `json:"iconUrl"`
	Name    string `json:"name"`
	ID      string `json:"id"`
}

type statusJSON struct {
	Self           string             `json:"self"`
	Description    string             `json:"description"`
	IconURL        string             `json:"iconUrl"`
	Name           string             `json:"name"`
	ID             string             `json:"id"`
	StatusCategory statusCategoryJSON `json:"statusCategory"`
}

type statusCategoryJSON struct {
	Self string `json:"self"`
	statusCategory
}

type commentPageJSON struct {
	Comments   []commentJSON `json:"comments"`
	Self       string        `json:"self,omitempty"`
	MaxResults int           `json:"maxResults"`
	Total      int           `json:"total"`
	StartAt    int           `json:"startAt"`
}

type commentJSON struct {
	Self         string   `json:"self"`
	ID           string   `json:"id"`
	Author       userJSON `json:"author"`
	Body         any      `json:"body"`
	UpdateAuthor userJSON `json:"updateAuthor"`
	Created      string   `json:"created"`
	Updated      string   `json:"updated"`
	JSDPublic    bool     `json:"jsdPublic"`
}

type transitionJSON struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	To            statusJSON `json:"to"`
	HasScreen     bool       `json:"hasScreen"`
	IsGlobal      bool       `json:"isGlobal"`
	IsInitial     bool       `json:"isInitial"`
	IsAvailable   bool       `json:"isAvailable"`
	IsConditional bool       `json:"isConditional"`
	IsLooped      bool       `json:"isLooped"`
}

// issueJSON renders is as GET issue does. The caller holds s.mu.
func (c call) issueJSON(is *issue) issueJSON {
	reporter := c.userJSON(is.reporter)
	typ := issueTypes[is.typ]
	pri := priorities[is.priority]
	f := fieldsJSON{
		StatusCategoryChangeDate: jiraTime(is.statusDate),
		IssueType: issueTypeJSON{
			Self:           c.url("issuetype/%s", typ.id),
			ID:             typ.id,
			Description:    typ.description,
			IconURL:        c.avatarURL("issuetype/avatar/%d?size=medium", typ.avatarID),
			Name:           typ.name,
			AvatarID:       typ.avatarID,
			HierarchyLevel: typ.hierarchy,
		},
		Project:     c.projectJSON(is.project),
		FixVersions: []any{},
		Watches:     watchesJSON{Self: c.url("issue/%s/watchers", is.key), WatchCount: 1, IsWatching: true},
		Created:     jiraTime(is.created),
		Priority: priorityJSON{
			Self:    c.url("priority/%s", pri.id),
			IconURL: c.site + "/images/icons/priorities/" + strings.ToLower(pri.name) + ".svg",
			Name:    pri.name,
			ID:      pri.id,
		},
		Labels:      append([]string{}, is.labels...),
		Versions:    []any{},
		IssueLinks:  []any{},
		Assignee:    nil, // new issues are unassigned
		Updated:     jiraTime(is.updated),
		Status:      c.statusJSON(statuses[is.status]),
		Components:  []any{},
		Description: document(c.v, is.description),
		Attachment:  []attachmentJSON{},
		Summary:     is.summary,
		Creator:     reporter,
		Subtasks:    []any{},
		Reporter:    reporter,
		Votes:       votesJSON{Self: c.url("issue/%s/votes", is.key)},
		Comment:     c.commentPage(is),
		WorkRatio:   -1,
	}
	for _, a := range is.attachments {
		f.Attachment = append(f.Attachment, c.attachmentJSON(a))
	}
	return issueJSON{
		Expand: "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
		ID:     is.id,
		Self:   c.url("issue/%s", is.id),
		Key:    is.key,
		Fields: f,
	}
}

func (c call) projectJSON(p *project) projectJSON {
	avatar := func(size string) string {
		return c.avatarURL("project/avatar/10408?size=%s", size)
	}
	return projectJSON{
		Self:           c.url("project/%s", p.id),
		ID:             p.id,
		Key:            p.key,
		Name:           p.key,
		ProjectTypeKey: "software",
		AvatarURLs: map[string]string{
			"48x48": avatar("large"), "24x24": avatar("small"),
			"16x16": avatar("xsmall"), "32x32": avatar("medium"),
		},
	}
}

func (c call) statusJSON(st status) statusJSON {
	return statusJSON{
		Self:        c.url("status/%s", st.id),
		Description: st.description,
		IconURL:     c.site + "/",
		Name:        st.name,
		ID:          st.id,
		StatusCategory: statusCategoryJSON{
			Self:           c.url("statuscategory/%d", st.category.ID),
			statusCategory: st.category,
		},
	}
}

func (c call) commentPage(is *issue) commentPageJSON {
	page := commentPageJSON{
		Comments:   make([]commentJSON, 0, len(is.comments)),
		Self:       c.url("issue/%s/comment", is.id),
		MaxResults: len(is.comments),
		Total:      len(is.comments),
	}
	for _, cm := range is.comments {
		page.Comments = append(page.Comments, c.commentJSON(is, cm))
	}
	return page
}

func (c call) commentJSON(is *issue, cm comment) commentJSON {
	author := c.userJSON(cm.author)
	updateAuthor := author
	if cm.updateAuthor != nil {
		updateAuthor = c.userJSON(*cm.updateAuthor)
	}
	return commentJSON{
		Self:         c.url("issue/%s/comment/%s", is.id, cm.id),
		ID:           cm.id,
		Author:       author,
		Body:         document(c.v, cm.body),
		UpdateAuthor: updateAuthor,
		Created:      jiraTime(cm.created),
		Updated:      jiraTime(cm.updated),
		JSDPublic:    true,
	}
}

// adfNode is a node of the Atlassian Document Format, in which API v3
// carries rich text (descriptions, comment bodies).
type adfNode struct {
	Type    string    `json:"type"`
	Version int       `json:"version,omitempty"`
	Text    string    `json:"text,omitempty"`
	Content []adfNode `json:"content,omitempty"`
}

// document renders plain text as API version v carries it: a string in
// v2, a document of one paragraph per line in v3; nil (null) when empty.
func document(v, text string) any {
	if text == "" {
		return nil
	}
	if v == "2" {
		return text
	}
	doc := adfNode{Type: "doc", Version: 1}
	for line := range strings.SplitSeq(text, "\n") {
		p := adfNode{Type: "paragraph"}
		if line != "" {
			p.Content = []adfNode{{Type: "text", Text: line}}
		}
		doc.Content = append(doc.Content, p)
	}
	return doc
}

// plainText reads rich text in either form, whatever the API version:
// clients are not always strict about it and neither is the stand-in.
func plainText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var doc adfNode
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Type != "doc" {
		return "", errors.New("expected a string or an Atlassian Document")
	}
	var lines []string
	for _, block := range doc.Content {
		lines = append(lines, nodeText(block))
	}
	return strings.Join(lines, "\n"), nil
}

func nodeText(n adfNode) string {
	var b strings.Builder
	b.WriteString(n.Text)
	for _, c := range n.Content {
		b.WriteString(nodeText(c))
	}
	return b.String()
}
