package jiratest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oxsecurity/oxbroker/jira/jiratest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	bearerToken = "service-account-token"
	basicEmail  = "me@acme.com"
	basicToken  = "personal-api-token"
)

// start serves a stand-in accepting one Bearer and one Basic credential.
func start(t *testing.T) (*jiratest.Server, *httptest.Server) {
	t.Helper()
	jira := jiratest.New(jiratest.Options{Credentials: []jiratest.Credential{
		{Scheme: jiratest.SchemeBearer, Token: bearerToken},
		{Scheme: jiratest.SchemeBasic, User: basicEmail, Token: basicToken},
	}})
	srv := httptest.NewServer(jira)
	t.Cleanup(srv.Close)
	return jira, srv
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into a new T, failing the test if it cannot.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

// do sends a request with the Bearer credential unless header sets
// Authorization ("" sends none). A non-nil body other than an io.Reader is
// sent as JSON.
func do(t *testing.T, method, url string, body any, header map[string]string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearerToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func wantStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status: got %d, want %d (body %s)", r.status, want, r.body)
	}
}

type jiraError struct {
	ErrorMessages []string          `json:"errorMessages"`
	Errors        map[string]string `json:"errors"`
}

func TestAuth(t *testing.T) {
	jira, srv := start(t)
	basic := func(user, pass string) string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(user, pass)
		return req.Header.Get("Authorization")
	}
	tests := []struct {
		name      string
		auth      string
		wantEmail string // empty: refused
	}{
		{"bearer", "Bearer " + bearerToken, "oxbroker-standin@serviceaccount.atlassian.com"},
		{"bearer lower-case scheme", "bearer " + bearerToken, "oxbroker-standin@serviceaccount.atlassian.com"},
		{"basic", basic(basicEmail, basicToken), basicEmail},
		{"no credentials", "", ""},
		{"wrong bearer", "Bearer nope", ""},
		{"basic token as bearer", "Bearer " + basicToken, ""},
		{"bearer token as basic", basic(basicEmail, bearerToken), ""},
		{"basic wrong email", basic("you@acme.com", basicToken), ""},
		{"basic wrong token", basic(basicEmail, "nope"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "GET", srv.URL+"/rest/api/3/myself", nil, map[string]string{"Authorization": tt.auth})
			if tt.wantEmail == "" {
				wantStatus(t, r, http.StatusUnauthorized)
				if got, want := r.header.Get("WWW-Authenticate"), `Basic realm="protected-area"`; got != want {
					t.Errorf("WWW-Authenticate: got %q, want %q", got, want)
				}
				if e := decode[jiraError](t, r); len(e.ErrorMessages) != 1 || e.Errors == nil {
					t.Errorf("body: got %s, want a Jira error", r.body)
				}
				return
			}
			wantStatus(t, r, http.StatusOK)
			me := decode[struct {
				AccountID    string `json:"accountId"`
				EmailAddress string `json:"emailAddress"`
				DisplayName  string `json:"displayName"`
				Active       bool   `json:"active"`
			}](t, r)
			if me.EmailAddress != tt.wantEmail || me.AccountID == "" || me.DisplayName == "" || !me.Active {
				t.Errorf("myself: got %+v, want email %s", me, tt.wantEmail)
			}
		})
	}
	// The log shows what credentials Jira saw, refused ones included.
	reqs := jira.Requests()
	if len(reqs) != len(tests) {
		t.Fatalf("requests: got %d, want %d", len(reqs), len(tests))
	}
	if got, want := reqs[0].Header.Get("Authorization"), "Bearer "+bearerToken; got != want {
		t.Errorf("first request Authorization: got %q, want %q", got, want)
	}
}

func TestAnonymousWhenNoCredentials(t *testing.T) {
	srv := httptest.NewServer(jiratest.New(jiratest.Options{}))
	defer srv.Close()
	wantStatus(t, do(t, "GET", srv.URL+"/rest/api/2/serverInfo", nil, map[string]string{"Authorization": ""}), http.StatusOK)
}

func TestTenantInfoNeedsNoCredentials(t *testing.T) {
	_, srv := start(t)
	r := do(t, "GET", srv.URL+"/_edge/tenant_info", nil, map[string]string{"Authorization": ""})
	wantStatus(t, r, http.StatusOK)
	if got := decode[map[string]string](t, r)["cloudId"]; got != jiratest.DefaultCloudID {
		t.Errorf("cloudId: got %q, want %q", got, jiratest.DefaultCloudID)
	}
}

func TestBases(t *testing.T) {
	jira, srv := start(t)
	key := jira.AddIssue("ABC", "Both bases")
	gateway := srv.URL + "/ex/jira/" + jira.CloudID()
	tests := []struct {
		base, version string
		want          int
	}{
		{srv.URL, "2", http.StatusOK},
		{srv.URL, "3", http.StatusOK},
		{gateway, "2", http.StatusOK},
		{gateway, "3", http.StatusOK},
		{srv.URL + "/ex/jira/00000000-0000-0000-0000-000000000000", "3", http.StatusNotFound},
		{srv.URL, "4", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.base+" v"+tt.version, func(t *testing.T) {
			r := do(t, "GET", tt.base+"/rest/api/"+tt.version+"/issue/"+key, nil, nil)
			wantStatus(t, r, tt.want)
			if tt.want != http.StatusOK {
				decode[jiraError](t, r)
				return
			}
			is := decode[struct{ Self, Key string }](t, r)
			if want := tt.base + "/rest/api/" + tt.version + "/issue/"; !strings.HasPrefix(is.Self, want) || is.Key != key {
				t.Errorf("got self %q key %q, want self under %q, key %q", is.Self, is.Key, want, key)
			}
		})
	}
}

type issueJSON struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Self   string `json:"self"`
	Fields struct {
		Summary     string          `json:"summary"`
		Description json.RawMessage `json:"description"`
		Labels      []string        `json:"labels"`
		Status      struct{ Name string }
		IssueType   struct{ Name string } `json:"issuetype"`
		Project     struct{ Key string }
		Reporter    struct{ AccountID string }
		Comment     struct {
			Total    int `json:"total"`
			Comments []struct {
				Body json.RawMessage `json:"body"`
			} `json:"comments"`
		}
		Attachment []struct{ ID string }
	}
}

func TestIssueRoundTrip(t *testing.T) {
	_, srv := start(t)
	api := srv.URL + "/rest/api/3/"
	adf := map[string]any{"type": "doc", "version": 1, "content": []any{
		map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": "Found by OX."}}},
	}}
	r := do(t, "POST", api+"issue", map[string]any{"fields": map[string]any{
		"project":     map[string]string{"key": "ABC"},
		"summary":     "SQL injection in login",
		"issuetype":   map[string]string{"name": "Bug"},
		"description": adf,
		"labels":      []string{"ox"},
	}}, nil)
	wantStatus(t, r, http.StatusCreated)
	created := decode[struct{ ID, Key, Self string }](t, r)
	if created.Key != "ABC-1" || created.ID != "10001" || created.Self != api+"issue/10001" {
		t.Fatalf("create: got %+v, want ABC-1, id 10001, self %sissue/10001", created, api)
	}

	is := decode[issueJSON](t, do(t, "GET", api+"issue/ABC-1", nil, nil))
	if is.Fields.Summary != "SQL injection in login" || is.Fields.IssueType.Name != "Bug" ||
		is.Fields.Status.Name != "To Do" || is.Fields.Project.Key != "ABC" || len(is.Fields.Labels) != 1 {
		t.Errorf("get: got %+v", is.Fields)
	}
	// API v2 gives the same description as a string.
	is2 := decode[issueJSON](t, do(t, "GET", srv.URL+"/rest/api/2/issue/10001", nil, nil))
	if got := string(is2.Fields.Description); got != `"Found by OX."` {
		t.Errorf("v2 description: got %s, want \"Found by OX.\"", got)
	}

	wantStatus(t, do(t, "PUT", api+"issue/ABC-1", map[string]any{"fields": map[string]any{
		"summary": "SQL injection in login form", "labels": []string{"ox", "security"},
	}}, nil), http.StatusNoContent)

	r = do(t, "POST", api+"issue/ABC-1/comment", map[string]any{"body": "Fixed in 1.2.3"}, nil)
	wantStatus(t, r, http.StatusCreated)
	r = do(t, "GET", api+"issue/ABC-1/comment", nil, nil)
	wantStatus(t, r, http.StatusOK)
	if page := decode[struct{ Total int }](t, r); page.Total != 1 {
		t.Errorf("comments: got total %d, want 1", page.Total)
	}

	r = do(t, "GET", api+"issue/ABC-1/transitions", nil, nil)
	var ids []string
	for _, tr := range decode[struct{ Transitions []struct{ ID, Name string } }](t, r).Transitions {
		ids = append(ids, tr.ID+" "+tr.Name)
	}
	if got, want := strings.Join(ids, ", "), "11 To Do, 21 In Progress, 31 Done"; got != want {
		t.Errorf("transitions: got %q, want %q", got, want)
	}
	wantStatus(t, do(t, "POST", api+"issue/ABC-1/transitions",
		map[string]any{"transition": map[string]string{"id": "21"}}, nil), http.StatusNoContent)
	wantStatus(t, do(t, "POST", api+"issue/ABC-1/transitions",
		map[string]any{"transition": map[string]string{"id": "99"}}, nil), http.StatusBadRequest)

	is = decode[issueJSON](t, do(t, "GET", api+"issue/ABC-1", nil, nil))
	if is.Fields.Summary != "SQL injection in login form" || len(is.Fields.Labels) != 2 ||
		is.Fields.Status.Name != "In Progress" || is.Fields.Comment.Total != 1 {
		t.Errorf("after edits: got %+v", is.Fields)
	}

	r = do(t, "GET", api+"search/jql?jql="+urlQuery(`project = ABC AND text ~ "1.2.3" ORDER BY created DESC`), nil, nil)
	wantStatus(t, r, http.StatusOK)
	found := decode[struct {
		Issues []issueJSON
		IsLast bool
	}](t, r)
	if len(found.Issues) != 1 || found.Issues[0].Key != "ABC-1" || !found.IsLast {
		t.Errorf("search: got %s", r.body)
	}

	wantStatus(t, do(t, "DELETE", api+"issue/ABC-1", nil, nil), http.StatusNoContent)
	r = do(t, "GET", api+"issue/ABC-1", nil, nil)
	wantStatus(t, r, http.StatusNotFound)
	if e := decode[jiraError](t, r); len(e.ErrorMessages) != 1 {
		t.Errorf("404 body: got %s, want a Jira error", r.body)
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer(" ", "+", `"`, "%22", "=", "%3D", "~", "%7E").Replace(s)
}

func TestCreateRefused(t *testing.T) {
	_, srv := start(t)
	tests := []struct {
		name      string
		fields    map[string]any
		wantField string
	}{
		{"no summary", map[string]any{"project": map[string]string{"key": "ABC"}}, "summary"},
		{"empty summary", map[string]any{"project": map[string]string{"key": "ABC"}, "summary": " "}, "summary"},
		{"no project", map[string]any{"summary": "x"}, "project"},
		{"bad project key", map[string]any{"project": map[string]string{"key": "a b"}, "summary": "x"}, "project"},
		{"unknown issue type", map[string]any{"project": map[string]string{"key": "ABC"}, "summary": "x",
			"issuetype": map[string]string{"name": "Saga"}}, "issuetype"},
		{"unknown field", map[string]any{"project": map[string]string{"key": "ABC"}, "summary": "x",
			"customfield_10010": 1}, "customfield_10010"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "POST", srv.URL+"/rest/api/3/issue", map[string]any{"fields": tt.fields}, nil)
			wantStatus(t, r, http.StatusBadRequest)
			if e := decode[jiraError](t, r); e.Errors[tt.wantField] == "" || e.ErrorMessages == nil {
				t.Errorf("got %s, want an error for %s", r.body, tt.wantField)
			}
		})
	}
	r := do(t, "POST", srv.URL+"/rest/api/3/issue", map[string]any{"fields": map[string]any{"project": map[string]string{"key": "ABC"}}}, nil)
	if got, want := string(r.body), `{"errorMessages":[],"errors":{"summary":"You must specify a summary of the issue."}}`; got != want {
		t.Errorf("body: got %s, want %s", got, want)
	}
}

func TestKeysNumberedPerProject(t *testing.T) {
	jira, srv := start(t)
	var keys []string
	for _, p := range []string{"ABC", "XYZ", "ABC"} {
		r := do(t, "POST", srv.URL+"/rest/api/2/issue", map[string]any{"fields": map[string]any{
			"project": map[string]string{"key": p}, "summary": "s",
		}}, nil)
		wantStatus(t, r, http.StatusCreated)
		keys = append(keys, decode[struct{ Key string }](t, r).Key)
	}
	keys = append(keys, jira.AddIssue("XYZ", "s"))
	if got, want := strings.Join(keys, " "), "ABC-1 XYZ-1 ABC-2 XYZ-2"; got != want {
		t.Errorf("keys: got %s, want %s", got, want)
	}
}

func TestConcurrentCreates(t *testing.T) {
	jira, srv := start(t)
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			do(t, "POST", srv.URL+"/rest/api/3/issue", map[string]any{"fields": map[string]any{
				"project": map[string]string{"key": "ABC"}, "summary": "s",
			}}, nil)
		})
	}
	wg.Wait()
	r := do(t, "GET", srv.URL+"/rest/api/3/search?maxResults=100&jql=project%3DABC", nil, nil)
	if got := decode[struct{ Total int }](t, r).Total; got != n {
		t.Errorf("issues: got %d, want %d", got, n)
	}
	if got := len(jira.Requests()); got != n+1 {
		t.Errorf("requests: got %d, want %d", got, n+1)
	}
}

func TestSearch(t *testing.T) {
	jira, srv := start(t)
	jira.AddIssue("ABC", "Leaked AWS key")
	jira.AddIssue("ABC", "Outdated openssl")
	jira.AddIssue("XYZ", "Leaked GitHub token")
	wantStatus(t, do(t, "POST", srv.URL+"/rest/api/3/issue/XYZ-1/transitions",
		map[string]any{"transition": map[string]string{"id": "31"}}, nil), http.StatusNoContent)

	tests := []struct {
		jql  string
		want string // keys, or "400"
	}{
		{"", "ABC-1 ABC-2 XYZ-1"},
		{"project = ABC", "ABC-1 ABC-2"},
		{"project=abc ORDER BY key", "ABC-1 ABC-2"},
		{"key = ABC-2", "ABC-2"},
		{`summary ~ "leaked"`, "ABC-1 XYZ-1"},
		{`text ~ leaked and project = XYZ`, "XYZ-1"},
		{`status = "Done"`, "XYZ-1"},
		{`summary ~ "leaked token"`, "XYZ-1"},
		{"project = NOPE", "400"},
		{"key = ABC-99", "400"},
		{"project = ABC OR project = XYZ", "400"},
		{"assignee = currentUser()", "400"},
		{"summary = leaked", "400"},
		{`summary ~ "unterminated`, "400"},
		{"project =", "400"},
	}
	for _, tt := range tests {
		t.Run(tt.jql, func(t *testing.T) {
			for _, req := range []struct {
				method, path string
				body         any
			}{
				{"GET", "search/jql?jql=" + urlQuery(tt.jql), nil},
				{"POST", "search/jql", map[string]string{"jql": tt.jql}},
				{"GET", "search?jql=" + urlQuery(tt.jql), nil},
			} {
				r := do(t, req.method, srv.URL+"/rest/api/3/"+req.path, req.body, nil)
				if tt.want == "400" {
					wantStatus(t, r, http.StatusBadRequest)
					if e := decode[jiraError](t, r); len(e.ErrorMessages) != 1 {
						t.Errorf("%s %s: got %s, want a Jira error", req.method, req.path, r.body)
					}
					continue
				}
				wantStatus(t, r, http.StatusOK)
				var keys []string
				for _, is := range decode[struct{ Issues []issueJSON }](t, r).Issues {
					keys = append(keys, is.Key)
				}
				if got := strings.Join(keys, " "); got != tt.want {
					t.Errorf("%s %s: got %q, want %q", req.method, req.path, got, tt.want)
				}
			}
		})
	}
}

func TestSearchPages(t *testing.T) {
	jira, srv := start(t)
	for range 5 {
		jira.AddIssue("ABC", "s")
	}
	var keys []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("no last page")
		}
		r := do(t, "POST", srv.URL+"/rest/api/3/search/jql",
			map[string]any{"jql": "project = ABC", "maxResults": 2, "nextPageToken": token}, nil)
		wantStatus(t, r, http.StatusOK)
		page := decode[struct {
			Issues        []issueJSON
			NextPageToken string
			IsLast        bool
		}](t, r)
		for _, is := range page.Issues {
			keys = append(keys, is.Key)
		}
		if page.IsLast {
			break
		}
		token = page.NextPageToken
	}
	if got, want := strings.Join(keys, " "), "ABC-1 ABC-2 ABC-3 ABC-4 ABC-5"; got != want {
		t.Errorf("pages: got %q, want %q", got, want)
	}

	r := do(t, "GET", srv.URL+"/rest/api/2/search?jql=project%3DABC&startAt=4&maxResults=2", nil, nil)
	old := decode[struct {
		StartAt, MaxResults, Total int
		Issues                     []issueJSON
	}](t, r)
	if old.StartAt != 4 || old.MaxResults != 2 || old.Total != 5 || len(old.Issues) != 1 {
		t.Errorf("old search: got %+v", old)
	}
}

func TestPermissions(t *testing.T) {
	jira := jiratest.New(jiratest.Options{DenyPermissions: []string{"CREATE_ISSUES"}})
	srv := httptest.NewServer(jira)
	defer srv.Close()
	r := do(t, "GET", srv.URL+"/rest/api/3/mypermissions?permissions=BROWSE_PROJECTS,CREATE_ISSUES", nil, nil)
	wantStatus(t, r, http.StatusOK)
	perms := decode[struct {
		Permissions map[string]struct {
			Key            string
			HavePermission bool
		}
	}](t, r).Permissions
	if len(perms) != 2 || !perms["BROWSE_PROJECTS"].HavePermission || perms["CREATE_ISSUES"].HavePermission ||
		perms["CREATE_ISSUES"].Key != "CREATE_ISSUES" {
		t.Errorf("permissions: got %+v", perms)
	}
	wantStatus(t, do(t, "GET", srv.URL+"/rest/api/3/mypermissions", nil, nil), http.StatusBadRequest)
}

func TestServerInfo(t *testing.T) {
	_, srv := start(t)
	r := do(t, "GET", srv.URL+"/rest/api/3/serverInfo", nil, nil)
	info := decode[struct{ BaseURL, DeploymentType, Version string }](t, r)
	if info.BaseURL != srv.URL || info.DeploymentType != "Cloud" || info.Version == "" {
		t.Errorf("serverInfo: got %+v", info)
	}
}

// upload posts files to the issue as the multipart field "file".
func upload(t *testing.T, url string, header map[string]string, files map[string][]byte) response {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for name, content := range files {
		fw, err := mw.CreateFormFile("file", name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(content)
	}
	mw.Close()
	h := map[string]string{"Content-Type": mw.FormDataContentType()}
	for k, v := range header {
		h[k] = v
	}
	return do(t, "POST", url, &body, h)
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestAttachments(t *testing.T) {
	jira, srv := start(t)
	key := jira.AddIssue("ABC", "With files")
	api := srv.URL + "/rest/api/3/"
	noCheck := map[string]string{"X-Atlassian-Token": "no-check"}

	r := upload(t, api+"issue/"+key+"/attachments", nil, map[string][]byte{"a.txt": []byte("hi")})
	wantStatus(t, r, http.StatusForbidden)
	if !strings.Contains(string(r.body), "XSRF check failed") {
		t.Errorf("403 body: got %q, want XSRF check failed", r.body)
	}
	wantStatus(t, upload(t, api+"issue/ABC-99/attachments", noCheck, map[string][]byte{"a.txt": []byte("hi")}),
		http.StatusNotFound)

	small := []byte("scan report\n")
	large := bytes.Repeat([]byte("0123456789abcdef"), 100000) // 1.5 MiB: hashed, not kept
	for _, tt := range []struct {
		name       string
		content    []byte
		downloaded bool
	}{{"report.txt", small, true}, {"big.bin", large, false}} {
		r := upload(t, api+"issue/"+key+"/attachments", noCheck, map[string][]byte{tt.name: tt.content})
		wantStatus(t, r, http.StatusOK)
		meta := decode[[]struct {
			ID, Filename, MimeType, Content string
			Size                            int64
		}](t, r)
		if len(meta) != 1 || meta[0].Filename != tt.name || meta[0].Size != int64(len(tt.content)) ||
			meta[0].Content != api+"attachment/content/"+meta[0].ID {
			t.Fatalf("upload %s: got %s", tt.name, r.body)
		}
		info, ok := jira.Attachment(meta[0].ID)
		if !ok || info.Size != int64(len(tt.content)) || info.SHA256 != sha(tt.content) || info.IssueKey != key {
			t.Errorf("Attachment(%s): got %+v, %v", meta[0].ID, info, ok)
		}
		r = do(t, "GET", meta[0].Content, nil, nil)
		if !tt.downloaded {
			wantStatus(t, r, http.StatusNotFound)
			continue
		}
		wantStatus(t, r, http.StatusOK)
		if !bytes.Equal(r.body, tt.content) {
			t.Errorf("download %s: got %q, want %q", tt.name, r.body, tt.content)
		}
	}

	is := decode[issueJSON](t, do(t, "GET", api+"issue/"+key, nil, nil))
	if len(is.Fields.Attachment) != 2 {
		t.Errorf("issue attachments: got %d, want 2", len(is.Fields.Attachment))
	}
	wantStatus(t, do(t, "GET", api+"attachment/"+is.Fields.Attachment[0].ID, nil, nil), http.StatusOK)
	wantStatus(t, do(t, "GET", api+"attachment/424242", nil, nil), http.StatusNotFound)
}

func TestSyntheticAttachment(t *testing.T) {
	jira, srv := start(t)
	key := jira.AddIssue("ABC", "Big file")
	const size = 3<<20 + 5 // not a multiple of the generator's word
	id := jira.AddAttachment(key, "big.bin", size)

	resp, err := http.DefaultClient.Do(authorized(t, "GET", srv.URL+"/rest/api/3/attachment/content/"+id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil || n != size || resp.ContentLength != size {
		t.Fatalf("download: got %d bytes (Content-Length %d), %v; want %d", n, resp.ContentLength, err, size)
	}
	want := sha256.New()
	io.Copy(want, jiratest.SyntheticContent(size))
	if !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Error("download differs from SyntheticContent")
	}

	// A range starting mid-word gives the same bytes as the whole.
	req := authorized(t, "GET", srv.URL+"/rest/api/3/attachment/content/"+id)
	req.Header.Set("Range", "bytes=1000003-1000010")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	got, _ := io.ReadAll(r.Body)
	whole := make([]byte, 8)
	jiratest.SyntheticContent(size).ReadAt(whole, 1000003)
	if r.StatusCode != http.StatusPartialContent || !bytes.Equal(got, whole) {
		t.Errorf("range: got %d %x, want 206 %x", r.StatusCode, got, whole)
	}
	if info, _ := jira.Attachment(id); !info.Synthetic || info.Size != size {
		t.Errorf("Attachment: got %+v", info)
	}
}

func TestSyntheticContentHasNoRepeats(t *testing.T) {
	b, _ := io.ReadAll(jiratest.SyntheticContent(1 << 16))
	seen := make(map[string]bool)
	for i := 0; i+8 <= len(b); i += 8 {
		w := string(b[i : i+8])
		if seen[w] {
			t.Fatalf("word at %d repeats", i)
		}
		seen[w] = true
	}
}

func authorized(t *testing.T, method, url string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearerToken)
	return req
}

// TestIssueSize keeps a plain issue about 4 KiB, the size benchmarks quote.
func TestIssueSize(t *testing.T) {
	jira, srv := start(t)
	key := jira.AddIssue("ABC", "Vulnerable dependency lodash 4.17.20 in web-frontend")
	for _, base := range []string{srv.URL, srv.URL + "/ex/jira/" + jira.CloudID()} {
		for _, v := range []string{"2", "3"} {
			r := do(t, "GET", base+"/rest/api/"+v+"/issue/"+key, nil, nil)
			wantStatus(t, r, http.StatusOK)
			if n := len(r.body); n < 3600 || n > 4600 {
				t.Errorf("%s v%s: issue is %d bytes, want about 4096", base, v, n)
			}
			t.Logf("%s v%s: %d bytes", base, v, len(r.body))
		}
	}
}

func TestSetStatus(t *testing.T) {
	jira, srv := start(t)
	jira.SetStatus("/rest/api/3/myself", http.StatusTooManyRequests, map[string]string{"Retry-After": "7"})
	for _, base := range []string{srv.URL, srv.URL + "/ex/jira/" + jira.CloudID()} {
		r := do(t, "GET", base+"/rest/api/3/myself", nil, nil)
		wantStatus(t, r, http.StatusTooManyRequests)
		if got := r.header.Get("Retry-After"); got != "7" {
			t.Errorf("Retry-After: got %q, want 7", got)
		}
	}
	// Credentials are still checked first.
	wantStatus(t, do(t, "GET", srv.URL+"/rest/api/3/myself", nil, map[string]string{"Authorization": ""}),
		http.StatusUnauthorized)
	wantStatus(t, do(t, "GET", srv.URL+"/rest/api/2/myself", nil, nil), http.StatusOK)
	jira.SetStatus("/rest/api/3/myself", 0, nil)
	wantStatus(t, do(t, "GET", srv.URL+"/rest/api/3/myself", nil, nil), http.StatusOK)
}

func TestSetDelay(t *testing.T) {
	jira, srv := start(t)
	jira.SetDelay(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := authorized(t, "GET", srv.URL+"/rest/api/3/myself").WithContext(ctx)
	start := time.Now()
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel took %v", d)
	}
	// tenant_info is not delayed.
	wantStatus(t, do(t, "GET", srv.URL+"/_edge/tenant_info", nil, nil), http.StatusOK)

	jira.SetDelay(20 * time.Millisecond)
	start = time.Now()
	wantStatus(t, do(t, "GET", srv.URL+"/rest/api/3/myself", nil, nil), http.StatusOK)
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("answered after %v, want at least 20ms", d)
	}
}

func TestRequestLog(t *testing.T) {
	jira, srv := start(t)
	do(t, "GET", srv.URL+"/ex/jira/"+jira.CloudID()+"/rest/api/3/search/jql?jql=x", nil, map[string]string{"X-Test": "1"})
	reqs := jira.Requests()
	if len(reqs) != 1 {
		t.Fatalf("requests: got %d, want 1", len(reqs))
	}
	got := reqs[0]
	want := jiratest.Request{Method: "GET", Path: "/ex/jira/" + jira.CloudID() + "/rest/api/3/search/jql", RawQuery: "jql=x"}
	if got.Method != want.Method || got.Path != want.Path || got.RawQuery != want.RawQuery ||
		got.Host != strings.TrimPrefix(srv.URL, "http://") || got.Header.Get("X-Test") != "1" {
		t.Errorf("request: got %+v, want %+v", got, want)
	}
	// The copy is the caller's.
	got.Header.Set("X-Test", "2")
	if jira.Requests()[0].Header.Get("X-Test") != "1" {
		t.Error("Requests shares headers with the log")
	}
	jira.Reset()
	if n := len(jira.Requests()); n != 0 {
		t.Errorf("after Reset: got %d requests, want 0", n)
	}
}

func TestRequestLogKeepsTheLatest(t *testing.T) {
	jira := jiratest.New(jiratest.Options{RequestLog: 3})
	srv := httptest.NewServer(jira)
	defer srv.Close()
	for i := range 10 {
		do(t, "GET", fmt.Sprintf("%s/rest/api/3/issue/X-%d", srv.URL, i), nil, nil)
	}
	var paths []string
	for _, r := range jira.Requests() {
		paths = append(paths, strings.TrimPrefix(r.Path, "/rest/api/3/issue/"))
	}
	if got, want := strings.Join(paths, " "), "X-7 X-8 X-9"; got != want {
		t.Errorf("log: got %q, want %q", got, want)
	}
}

func TestUnknownPath(t *testing.T) {
	_, srv := start(t)
	for _, p := range []string{"/rest/api/3/nothing", "/rest/agile/1.0/board", "/favicon.ico"} {
		r := do(t, "GET", srv.URL+p, nil, nil)
		wantStatus(t, r, http.StatusNotFound)
		if e := decode[jiraError](t, r); len(e.ErrorMessages) != 1 {
			t.Errorf("%s: got %s, want a Jira error", p, r.body)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []jiratest.Options{
		{CloudID: "a/b"},
		{Credentials: []jiratest.Credential{{Scheme: "Digest", Token: "x"}}},
		{Credentials: []jiratest.Credential{{Scheme: jiratest.SchemeBearer}}},
		{Credentials: []jiratest.Credential{{Scheme: jiratest.SchemeBasic, Token: "x"}}},
		{RequestLog: -1},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v): got nil, want an error", o)
		}
	}
}

// TestLinksFollowTheCallingURL: like Jira, the stand-in makes self,
// nextPage and Location from the URL it was called through, at the root,
// under /ex/jira/{cloudId} and under a Data Center context path; and the
// links work when followed.
func TestLinksFollowTheCallingURL(t *testing.T) {
	root, rootSrv := start(t)
	dc := jiratest.New(jiratest.Options{ContextPath: "/jira", Credentials: []jiratest.Credential{{Scheme: jiratest.SchemeBearer, Token: bearerToken}}})
	dcSrv := httptest.NewServer(dc)
	t.Cleanup(dcSrv.Close)
	for _, tt := range []struct {
		name, base string
	}{
		{"data center at the root", rootSrv.URL},
		{"cloud gateway", rootSrv.URL + "/ex/jira/" + root.CloudID()},
		{"data center context path", dcSrv.URL + "/jira"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			api := tt.base + "/rest/api/2/"
			r := do(t, "POST", api+"issue", map[string]any{"fields": map[string]any{
				"project": map[string]string{"key": "LNK"}, "summary": "links",
			}}, nil)
			wantStatus(t, r, http.StatusCreated)
			created := decode[struct{ Key, Self string }](t, r)
			if !strings.HasPrefix(created.Self, api+"issue/") || r.header.Get("Location") != created.Self {
				t.Fatalf("create: self %q, Location %q; want both under %s", created.Self, r.header.Get("Location"), api)
			}
			wantStatus(t, do(t, "PUT", created.Self, map[string]any{"fields": map[string]any{"summary": "edited"}}, nil), http.StatusNoContent)
			if is := decode[issueJSON](t, do(t, "GET", created.Self, nil, nil)); is.Fields.Summary != "edited" {
				t.Errorf("after PUT self: summary %q", is.Fields.Summary)
			}

			r = do(t, "POST", api+"issue/"+created.Key+"/comment", map[string]any{"body": "first"}, nil)
			wantStatus(t, r, http.StatusCreated)
			cm := decode[struct{ Self string }](t, r)
			if !strings.HasPrefix(cm.Self, api+"issue/") || r.header.Get("Location") != cm.Self {
				t.Fatalf("comment: self %q, Location %q", cm.Self, r.header.Get("Location"))
			}
			r = do(t, "PUT", cm.Self, map[string]any{"body": "second"}, nil)
			wantStatus(t, r, http.StatusOK)
			if got := decode[struct{ Body string }](t, do(t, "GET", cm.Self, nil, nil)); got.Body != "second" {
				t.Errorf("after PUT comment self: body %q", got.Body)
			}
		})
	}
	if r := do(t, "GET", dcSrv.URL+"/rest/api/2/serverInfo", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("outside the context path: got %d, want 404", r.status)
	}
	if got := decode[struct{ BaseURL string }](t, do(t, "GET", dcSrv.URL+"/jira/rest/api/2/serverInfo", nil, nil)); got.BaseURL != dcSrv.URL+"/jira" {
		t.Errorf("serverInfo baseUrl: got %q, want %q", got.BaseURL, dcSrv.URL+"/jira")
	}
}

// TestProjectSearchPages: project/search pages with nextPage until the
// last page, which has none.
func TestProjectSearchPages(t *testing.T) {
	jira, srv := start(t)
	for _, p := range []string{"AAA", "BBB", "CCC", "DDD", "EEE"} {
		jira.AddIssue(p, "x")
	}
	type page struct {
		Self, NextPage string
		IsLast         bool
		Total          int
		Values         []struct{ Key, Self string }
	}
	next := srv.URL + "/rest/api/3/project/search?maxResults=2"
	var keys []string
	for pages := 0; next != ""; pages++ {
		if pages == 5 {
			t.Fatal("more pages than projects")
		}
		p := decode[page](t, do(t, "GET", next, nil, nil))
		if p.Total != 5 || p.IsLast != (p.NextPage == "") {
			t.Errorf("page %d: total %d, isLast %v, nextPage %q", pages, p.Total, p.IsLast, p.NextPage)
		}
		for _, v := range p.Values {
			keys = append(keys, v.Key)
		}
		next = p.NextPage
	}
	if want := "AAA BBB CCC DDD EEE"; strings.Join(keys, " ") != want {
		t.Errorf("projects: got %v, want %s", keys, want)
	}
}
