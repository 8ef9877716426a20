// Package jiratest is an in-memory stand-in for Jira, for tests, benchmarks
// and the demo. It is an http.Handler: wrap it in httptest.NewServer (or
// NewTLSServer), or serve it with cmd/jira-standin.
//
// The stand-in answers the part of the Jira REST API (v2 and v3) that the
// broker and its users exercise: myself, serverInfo, mypermissions, issues
// (create, get, edit, delete), comments (add, get, edit), transitions,
// attachments (streamed uploads, downloads of any size), project/search
// (paged with nextPage) and search (search/jql and the old search) with a
// small JQL subset. Routes are served at the root, as a Data Center or
// *.atlassian.net site serves them, and under /ex/jira/{cloudId}, as the
// api.atlassian.com gateway used by service accounts serves them; with
// Options.ContextPath, below that path, as a Data Center site installed
// under one. Like Jira, it makes its absolute links (self, nextPage, the
// Location of a creation) from the URL it was called through. Its status
// codes, headers and error bodies follow Jira's, so that clients cannot tell
// the difference in the cases that matter to the broker.
//
// Hooks let tests slow every answer down (SetDelay), force a status such as
// 429 with Retry-After on a path (SetStatus) and read back every request the
// stand-in received (Requests), which shows which credentials Jira saw and
// that a refused call never arrived.
package jiratest
