package proxy

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// CheckPath reports whether rawPath, the escaped path of a request target
// (no query), is safe to forward and to judge by its decoded form. It
// returns nil, or an error whose message says, for the caller, what is
// wrong.
//
// A path is safe when its decoded form means the same thing to every
// server that might sit behind the upstream URL (Tomcat under Jira,
// a load balancer, IIS in front of Jira Data Center), so that the
// allowlist judges what Jira will serve. CheckPath therefore refuses:
//
//   - a path that does not start with "/";
//   - any byte outside RFC 3986's path characters (unreserved, sub-delims
//     except ";", ":", "@", "/" and %XX escapes): control characters, NUL,
//     space, backslash, non-ASCII, and "\"<>[]^`{|}#";
//   - ";", raw or escaped: Tomcat strips ";params" from each segment, so
//     "/issue/..;/x" is a traversal to Tomcat;
//   - malformed escapes, and escapes of "/", "\", NUL, control characters;
//   - double encoding: a decoded path that still holds a %XX escape
//     ("%252e", "%25%32%65"), which a second decoding would change;
//   - a decoded path that is not valid UTF-8 (overlong encodings such as
//     "%c0%ae" for ".");
//   - empty segments ("//", a trailing "/") and segments made only of
//     dots (".", "..", "..."), raw or escaped ("%2e%2e");
//   - near-dot segments, judged by what a server that normalises or trims
//     names would read (checkSegment): a segment that NFKC normalisation
//     changes (full-width "%ef%bc%8e" and "%ef%bc%8f", NBSP "%c2%a0"), one
//     with an invisible or non-ASCII space character, one that ends in a
//     dot or a space ("..%20", "a."), one that is only dots and spaces
//     once the ideographic full stop "%e3%80%82" counts as a dot, and one
//     naming an NTFS stream ("..::$DATA", ":$DATA"). A ":" elsewhere is
//     kept: Jira Cloud account ids hold one;
//   - a decoded path that path.Clean would change.
//
// The root path "/" is allowed.
func CheckPath(rawPath string) error {
	_, err := checkPath(rawPath)
	return err
}

// errNotAbsolute is the error for a path that does not start with "/".
var errNotAbsolute = errors.New(`path must start with "/"`)

// checkPath is CheckPath that also returns the decoded path.
func checkPath(raw string) (string, error) {
	if !strings.HasPrefix(raw, "/") {
		return "", errNotAbsolute
	}
	escapes := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' {
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", errors.New("path has a malformed %-escape")
			}
			d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			if err := checkDecodedByte(d); err != nil {
				return "", err
			}
			escapes++
			i += 2
			continue
		}
		if !isPathByte(c) {
			return "", fmt.Errorf("path contains %s", describeByte(c))
		}
	}

	decoded := raw
	if escapes > 0 {
		b := make([]byte, 0, len(raw)-2*escapes)
		for i := 0; i < len(raw); i++ {
			if raw[i] == '%' {
				b = append(b, unhex(raw[i+1])<<4|unhex(raw[i+2]))
				i += 2
				continue
			}
			b = append(b, raw[i])
		}
		decoded = string(b)
		if !utf8.ValidString(decoded) {
			return "", errors.New("path is not valid UTF-8 once decoded")
		}
		if hasEscape(decoded) {
			return "", errors.New("path is encoded twice (it still holds a %-escape once decoded)")
		}
	}

	if decoded != "/" {
		// Decoded "/" only comes from a raw "/" (escaped slashes are refused
		// above), so raw and decoded segments line up one to one.
		for seg := range strings.SplitSeq(decoded[1:], "/") {
			if err := checkSegment(seg); err != nil {
				return "", err
			}
		}
	}
	if path.Clean(decoded) != decoded {
		return "", errors.New("path is not in normal form")
	}
	return decoded, nil
}

// checkSegment judges one decoded segment by what the servers in front of
// Jira may make of it, not by its spelling: a segment is refused if a
// server that normalises or trims names could read it as "." or "..", or
// as another name than the allowlist saw.
func checkSegment(seg string) error {
	if seg == "" {
		return errors.New(`path has an empty segment ("//" or a trailing "/")`)
	}
	if strings.Trim(seg, ".") == "" {
		return errors.New(`path has a "." or ".." segment`)
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] >= utf8.RuneSelf {
			if err := checkUnicodeSegment(seg); err != nil {
				return err
			}
			seg = strings.ReplaceAll(seg, ideographicFullStop, ".")
			break
		}
	}
	// Windows and IIS drop trailing dots and spaces ("..%20" is ".."),
	// and read "name:stream" as a stream of the file "name" ("..::$DATA"
	// is "..").
	name, stream, hasStream := strings.Cut(seg, ":")
	switch {
	case strings.Trim(name, ". ") == "":
		return errors.New(`path has a segment that reads as "." or ".." once trailing dots, spaces or a ":stream" are dropped`)
	case strings.TrimRight(seg, ". ") != seg, strings.TrimRight(name, ". ") != name:
		return errors.New(`path has a segment ending in "." or a space, which some servers drop`)
	case hasStream && strings.Contains(":"+stream, ":$"):
		return errors.New(`path has a segment naming a file stream (":$DATA")`)
	}
	return nil
}

// ideographicFullStop (U+3002) is a full stop to IDNA (UTS #46), which
// NFKC leaves as it is; checkSegment reads it as ".".
const ideographicFullStop = "\u3002"

// checkUnicodeSegment refuses a segment with non-ASCII characters that
// Unicode normalisation (NFKC: full-width "．" and "／", NBSP, ligatures,
// decomposed accents) would change, and invisible or non-ASCII space
// characters, which some servers drop or read as a space.
func checkUnicodeSegment(seg string) error {
	if !norm.NFKC.IsNormalString(seg) {
		return errors.New("path has a segment that Unicode normalisation (NFKC) changes, such as a full-width dot or slash or a no-break space; send the normal form")
	}
	for _, r := range seg {
		if r >= utf8.RuneSelf && (unicode.IsSpace(r) || unicode.In(r, unicode.Cf, unicode.Zs, unicode.Zl, unicode.Zp)) {
			return fmt.Errorf("path has a segment with the invisible or space character U+%04X", r)
		}
	}
	return nil
}

// checkDecodedByte refuses the bytes that must not appear escaped.
func checkDecodedByte(d byte) error {
	switch {
	case d == '/':
		return errors.New(`path contains an escaped "/" (%2F)`)
	case d == '\\':
		return errors.New(`path contains an escaped backslash (%5C)`)
	case d == ';':
		return errors.New(`path contains an escaped ";" (%3B)`)
	case d == 0:
		return errors.New("path contains an escaped NUL (%00)")
	case d < 0x20 || d == 0x7f:
		return errors.New("path contains an escaped control character")
	}
	return nil
}

// isPathByte reports whether c may appear unescaped in a path: RFC 3986
// pchar and "/", except ";" (see CheckPath) and "%" (handled by the caller).
func isPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', // unreserved
		'!', '$', '&', '\'', '(', ')', '*', '+', ',', '=', // sub-delims but ';'
		':', '@', '/':
		return true
	}
	return false
}

// describeByte names a byte that isPathByte refused, for an error message.
func describeByte(c byte) string {
	switch {
	case c == 0:
		return "a NUL byte"
	case c < 0x20 || c == 0x7f:
		return "a control character"
	case c == '\\':
		return "a backslash"
	case c == ';':
		return `";" (path parameters are not accepted)`
	case c == ' ':
		return "a space"
	case c >= 0x80:
		return "a non-ASCII byte (escape it)"
	}
	return fmt.Sprintf("%q (escape it)", string(rune(c)))
}

// hasEscape reports whether s holds "%" followed by two hex digits.
func hasEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
