package proxy

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
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
		// A ":" is kept: Jira Cloud account ids hold one.
		"/rest/api/3/user/712020:0e3e5c0f-8f3b-4c3b-9c5d-3c2a1b0d9e8f/properties/k",
		"/rest/api/3/issue/A%3AB",
		// NFC text, and the ideographic full stop inside a name.
		"/rest/api/3/issue/ABC-1/properties/%E6%97%A5%E6%9C%AC",
		"/rest/api/3/issue/ABC-1/properties/a%E3%80%82b",
		"/rest/api/3/issue/%20A",
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
		// Near-dot segments (issue 12, finding 3): what a server that
		// trims or normalises names reads as "." or "..".
		"/rest/..%20/x",
		"/rest/.%20/x",
		"/rest/%20../x",
		"/rest/..%20%20/x",
		"/rest/..%c2%a0/x",
		"/rest/%c2%a0/x",
		"/rest/%e3%80%82%e3%80%82/x",
		"/rest/%e3%80%82/x",
		"/rest/.%e3%80%82/x",
		"/rest/%ef%bc%8e%ef%bc%8e/x",
		"/rest/%ef%bc%8e/x",
		"/rest/..%ef%bc%8fsecure",
		"/rest/a%ef%bc%8fb",
		"/rest/%ef%bd%a1%ef%bd%a1/x",
		"/rest/%e2%80%a4%e2%80%a4/x",
		"/rest/%e2%80%a5/x",
		"/rest/..::$DATA/x",
		"/rest/..:$DATA/x",
		"/rest/myself::$DATA",
		"/rest/myself:stream:$DATA",
		"/rest/..:x/y",
		"/rest/:$DATA",
		"/rest/a./x",
		"/rest/a../x",
		"/rest/a%20/x",
		"/rest/a.:b",
		"/rest/..%e2%80%8b/x",
		"/rest/..%ef%bb%bf/x",
		"/rest/..%c2%ad/x",
		"/rest/..%e3%80%80/x",
		"/rest/..%c2%85/x",
		"/rest/e%cc%81",
		"/rest/%ef%bc%a1%ef%bc%a2%ef%bc%a3-1",
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
		"/..%20/", "/..%c2%a0/", "/%e3%80%82%e3%80%82/", "/%ef%bc%8e%ef%bc%8e/", "/..::$DATA/", "/a%ef%bc%8fb",
		"/a.", "/712020:abc", "/%e6%97%a5",
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
			if decoded == "/" {
				break
			}
			if strings.Trim(seg, ".") == "" {
				t.Fatalf("accepted %q with a dot or empty segment", raw)
			}
			// What a server that normalises or trims names reads: the
			// same segment, never a dot segment.
			if !norm.NFKC.IsNormalString(seg) {
				t.Fatalf("accepted %q, whose segment %q NFKC changes", raw, seg)
			}
			dots := strings.ReplaceAll(seg, "\u3002", ".")
			name, _, _ := strings.Cut(dots, ":")
			if strings.Trim(name, ". ") == "" || strings.TrimRight(dots, ". ") != dots || strings.Contains(seg, ":$") {
				t.Fatalf("accepted %q, whose segment %q a trimming server reads as a dot segment or another name", raw, seg)
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
