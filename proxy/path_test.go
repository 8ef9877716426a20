package proxy

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckPath(t *testing.T) {
	ok := []string{
		"/",
		"/rest/api/3/myself",
		"/rest/api/3/issue/ABC-1",
		"/rest/api/3/issue/A%20B",
		"/rest/api/3/issue/%41BC-1",
		"/rest/api/3/issue/a.b",
		"/rest/api/3/issue/a%2eb",
		"/rest/api/3/issue/.hidden",
		"/rest/api/3/issue/a..b",
		"/rest/api/3/issue/ABC-1/properties/k%C3%A9y",
		"/rest/api/3/issue/A:B@C+D!$&'()*,=~_-",
		"/rest/api/3/issue/100%25",
		"/rest/api/3/issue/%25zz",
	}
	for _, p := range ok {
		if err := CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q): got %v, want nil", p, err)
		}
	}
	bad := []string{
		"",
		"rest/api/3/myself",
		"*",
		"http://evil/x",
		"//rest",
		"/rest//api",
		"/rest/",
		"/.",
		"/..",
		"/rest/./api",
		"/rest/../api",
		"/rest/...",
		"/rest/%2e",
		"/rest/%2E%2E",
		"/rest/.%2e/x",
		"/rest/%2e./x",
		"/a%2fb",
		"/a%2Fb",
		"/a\\b",
		"/a%5cb",
		"/a%5Cb",
		"/a\x00b",
		"/a%00b",
		"/a\x1fb",
		"/a%1fb",
		"/a%7Fb",
		"/a\x7fb",
		"/a b",
		"/a;b",
		"/a%3bb",
		"/..;/x",
		"/a%252e",
		"/a%252F",
		"/%c0%ae%c0%ae/x",
		"/a%ff",
		"/a%",
		"/a%2",
		"/a%g0",
		"/a#b",
		"/a?b",
		"/a\"b",
		"/a<b>",
		"/a[0]",
		"/a{b}",
		"/a|b",
		"/a^b",
		"/a`b",
		"/a\xc3\xa9",
		"/a\r\nX: y",
	}
	for _, p := range bad {
		if err := CheckPath(p); err == nil {
			t.Errorf("CheckPath(%q): got nil, want an error", p)
		}
	}
}

func TestCheckPathDecoded(t *testing.T) {
	for raw, want := range map[string]string{
		"/rest/api/3/myself":         "/rest/api/3/myself",
		"/rest/api/3/issue/A%20B":    "/rest/api/3/issue/A B",
		"/rest/api/3/issue/%41BC":    "/rest/api/3/issue/ABC",
		"/rest/api/3/issue/k%C3%A9y": "/rest/api/3/issue/kéy",
	} {
		got, err := checkPath(raw)
		if err != nil || got != want {
			t.Errorf("checkPath(%q): got %q, %v; want %q", raw, got, err, want)
		}
	}
}

// FuzzCheckPath checks that whatever CheckPath accepts is clean once
// decoded, decodes the way url.PathUnescape does, cannot be turned into
// another path by a second decoding, and survives url.URL's escaping as
// it is (so the path forwarded is the path checked).
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{
		"/rest/api/3/issue/ABC-1", "/rest/api/3/issue/../x", "/a%2fb", "/a%252e%252e",
		"/%2e%2e/", "/a\\b", "/a;b", "/..;/", "/%c0%ae", "/a%20b", "/", "//", "/a%25",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		decoded, err := checkPath(raw)
		if err != nil {
			return
		}
		if err := CheckPath(raw); err != nil {
			t.Fatalf("checkPath accepted %q but CheckPath did not: %v", raw, err)
		}
		want, err := url.PathUnescape(raw)
		if err != nil || want != decoded {
			t.Fatalf("decoded %q as %q, url.PathUnescape says %q, %v", raw, decoded, want, err)
		}
		if path.Clean(decoded) != decoded {
			t.Fatalf("accepted %q, whose decoded form %q is not clean", raw, decoded)
		}
		if !utf8.ValidString(decoded) {
			t.Fatalf("accepted %q, not UTF-8 once decoded", raw)
		}
		if strings.ContainsAny(decoded, "\\;\x00") {
			t.Fatalf("accepted %q, decoded %q", raw, decoded)
		}
		for _, seg := range strings.Split(decoded, "/")[1:] {
			if decoded != "/" && strings.Trim(seg, ".") == "" {
				t.Fatalf("accepted %q with a dot or empty segment", raw)
			}
		}
		if strings.Count(raw, "/") != strings.Count(decoded, "/") {
			t.Fatalf("accepted %q, whose decoding adds a /", raw)
		}
		// A second decoding changes nothing that matters.
		if twice, err := url.PathUnescape(decoded); err == nil && twice != decoded {
			if strings.Count(twice, "/") != strings.Count(decoded, "/") || path.Clean(twice) != twice || strings.ContainsAny(twice, "\\;\x00") {
				t.Fatalf("accepted %q, which a second decoding turns into %q", raw, twice)
			}
		}
		u := url.URL{Path: "/base" + decoded, RawPath: "/base" + raw}
		if got := u.EscapedPath(); got != "/base"+raw {
			t.Fatalf("url.URL escapes accepted %q as %q", raw, got)
		}
	})
}
