package jira

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// segment is one segment of a template.
type segment struct {
	text  string // the literal, or the parameter's name
	param bool
}

// parseTemplate splits a path template such as
// "/rest/api/3/issue/{issueIdOrKey}" into segments. A template starts with
// "/", has no empty segment (so no trailing "/"), and each segment is
// either a parameter "{name}" or a literal of RFC 3986 path characters
// other than "%" and ";" that is not made of dots only.
func parseTemplate(t string) ([]segment, error) {
	if !strings.HasPrefix(t, "/") {
		return nil, errors.New(`a path template must start with "/"`)
	}
	if t == "/" {
		return nil, errors.New("a path template must have at least one segment")
	}
	var segs []segment
	for s := range strings.SplitSeq(t[1:], "/") {
		switch {
		case s == "":
			return nil, errors.New(`a path template must not have an empty segment ("//" or a trailing "/")`)
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
			name := s[1 : len(s)-1]
			if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isNameRune(r) }) {
				return nil, fmt.Errorf("bad parameter %q: want {name} with letters, digits, '_', '-' or '.'", s)
			}
			segs = append(segs, segment{text: name, param: true})
		case strings.ContainsAny(s, "{}"):
			return nil, fmt.Errorf("segment %q: a parameter must be a whole segment, such as {issueIdOrKey}", s)
		case strings.Trim(s, ".") == "":
			return nil, fmt.Errorf(`segment %q: "." and ".." segments are not allowed`, s)
		default:
			for i := 0; i < len(s); i++ {
				if !isLiteralByte(s[i]) {
					return nil, fmt.Errorf("segment %q: byte %q is not allowed in a path template", s, s[i])
				}
			}
			segs = append(segs, segment{text: s})
		}
	}
	return segs, nil
}

func isNameRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-' || r == '.'
}

// isLiteralByte reports whether c may appear in a literal segment of a
// template: RFC 3986 pchar without "%" (no escapes) and ";" (which the
// proxy refuses).
func isLiteralByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,=:@", c) >= 0
}

// shapeOf writes segs with every parameter as "{}".
func shapeOf(segs []segment) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		if s.param {
			b.WriteString("{}")
		} else {
			b.WriteString(s.text)
		}
	}
	return b.String()
}

// sameShape reports whether two templates have the same literals and
// parameters at the same places, whatever the parameters' names.
func sameShape(a, b []segment) bool {
	return slices.EqualFunc(a, b, func(x, y segment) bool {
		return x.param == y.param && (x.param || x.text == y.text)
	})
}
