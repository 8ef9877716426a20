package jira

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/oxsecurity/oxbroker/config"
)

// TestCredentialFormsCoverWhatIsSent checks that the Authorization value
// SetCredentials sends, and the secret inside it, are among the forms the
// response scrub looks for.
func TestCredentialFormsCoverWhatIsSent(t *testing.T) {
	for _, a := range []config.Auth{
		{Type: config.AuthServiceAccount, Token: "sa-tok/1+2="},
		{Type: config.AuthBearer, Token: "pat-tok"},
		{Type: config.AuthBasic, Email: "me@acme.com", Token: "api-tok"},
	} {
		t.Run(a.Type, func(t *testing.T) {
			h := http.Header{}
			SetCredentials(h, a)
			sent := h.Get("Authorization")
			forms := CredentialForms(a)
			if !slices.Contains(forms, sent) {
				t.Errorf("forms %q lack the header value %q", forms, sent)
			}
			if !slices.Contains(forms, a.Token.Reveal()) {
				t.Errorf("forms %q lack the token", forms)
			}
			if _, enc, ok := strings.Cut(sent, "Basic "); ok {
				raw, _ := base64.StdEncoding.DecodeString(enc)
				if !slices.Contains(forms, enc) || !slices.Contains(forms, string(raw)) {
					t.Errorf("forms %q lack the base64 %q or the raw %q", forms, enc, raw)
				}
			}
		})
	}
	if f := CredentialForms(config.Auth{Type: config.AuthBearer}); f != nil {
		t.Errorf("no token: got %q, want nil", f)
	}
}

// TestServesFileNamesKnownOperations keeps the list of file operations
// in step with the operations table.
func TestServesFileNamesKnownOperations(t *testing.T) {
	tab, err := loadTable()
	if err != nil {
		t.Fatal(err)
	}
	for id := range fileOperations {
		if tab.byID[id] == nil {
			t.Errorf("%s is not an operation of the table", id)
		}
	}
	if !ServesFile("getAttachmentContent") || ServesFile("getIssue") {
		t.Error("ServesFile: wrong answer for getAttachmentContent or getIssue")
	}
}
