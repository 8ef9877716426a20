package ui

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// TestNoInlineCodeNoCDN keeps the pages within their Content-Security-
// Policy and offline: no inline script or style, no event-handler
// attributes, nothing loaded from another host.
func TestNoInlineCodeNoCDN(t *testing.T) {
	bad := []struct {
		re   *regexp.Regexp
		what string
	}{
		{regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]`), "an inline script"},
		{regexp.MustCompile(`(?i)\sstyle\s*=`), "a style attribute"},
		{regexp.MustCompile(`(?i)<style`), "a style element"},
		{regexp.MustCompile(`(?i)\son[a-z]+\s*=`), "an event-handler attribute"},
		{regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//`), "a resource from another host"},
		{regexp.MustCompile(`(?i)javascript:`), "a javascript: URL"},
	}
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		text := string(b)
		for _, c := range bad {
			if c.what != "" && c.re.MatchString(text) {
				t.Errorf("%s has %s: %q", path, c.what, c.re.FindString(text))
			}
		}
		if strings.HasSuffix(path, ".html") {
			for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(text, -1) {
				if !strings.Contains(tag, `src="/assets/`) {
					t.Errorf("%s: script %s is not one of the embedded assets", path, tag)
				}
			}
			for _, tag := range regexp.MustCompile(`(?i)<link[^>]*>`).FindAllString(text, -1) {
				if !strings.Contains(tag, `href="/assets/`) {
					t.Errorf("%s: link %s is not one of the embedded assets", path, tag)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
