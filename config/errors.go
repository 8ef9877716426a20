package config

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// FieldError is one problem in a config, at a key path such as
// "sites[1].auth.email". Path is empty for problems with the whole file.
type FieldError struct {
	Path    string
	Message string
	// Line is the line of the file that holds the key, when the file
	// has it (a missing key has none); 0 otherwise.
	Line int
}

func (e FieldError) Error() string {
	msg := e.Message
	if e.Line > 0 {
		msg += " (line " + strconv.Itoa(e.Line) + ")"
	}
	if e.Path == "" {
		return msg
	}
	return e.Path + ": " + msg
}

// Errors is every problem found in a config, one "key.path: message" line
// each. Loading and Validate return it so that a user fixes a file in one
// pass instead of one error at a time.
type Errors []FieldError

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, fe := range e {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

func (e *Errors) add(path, message string) {
	*e = append(*e, FieldError{Path: path, Message: message})
}

// orErrNil returns e as an error, or a nil error (not a nil Errors inside a
// non-nil interface) when there are no problems.
func (e Errors) orErrNil() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// merge combines the problems found while loading with those Validate
// found, in schema order: the order of the fields in the struct types,
// which is the order of the documented example config and so the file
// order of most files (viper does not keep the order of keys). A
// validation problem at or below a path that already failed to load is
// dropped: "sites[0].auth.token: required" after "environment variable
// JIRA_TOKEN is not set" would only repeat it.
func merge(root reflect.Type, loaded, validated Errors) Errors {
	all := slices.Clone(loaded)
	for _, v := range validated {
		if !slices.ContainsFunc(loaded, func(l FieldError) bool { return within(v.Path, l.Path) }) {
			all = append(all, v)
		}
	}
	keys := make(map[string][]int, len(all))
	for _, e := range all {
		keys[e.Path] = schemaOrder(root, e.Path)
	}
	// Unknown keys come first: a misspelt key is often why a "required"
	// error below it appears, and fixing it fixes both.
	slices.SortStableFunc(all, func(a, b FieldError) int {
		if ua, ub := a.Message == msgUnknownKey || strings.HasPrefix(a.Message, msgUnknownKey+";"),
			b.Message == msgUnknownKey || strings.HasPrefix(b.Message, msgUnknownKey+";"); ua != ub {
			if ua {
				return -1
			}
			return 1
		}
		return slices.Compare(keys[a.Path], keys[b.Path])
	})
	return all
}

// withLines sets the Line of each problem whose key the file holds.
func withLines(errs Errors, lines map[string]int) Errors {
	for i := range errs {
		errs[i].Line = lines[errs[i].Path]
	}
	return errs
}

// within reports whether path is parent or lies below it.
func within(path, parent string) bool {
	rest, ok := strings.CutPrefix(path, parent)
	return ok && (rest == "" || rest[0] == '.' || rest[0] == '[')
}

// schemaOrder turns a key path into a sort key: the index of each field in
// its struct, and list indexes as they are. A key the schema does not know
// sorts after the known fields of its parent.
func schemaOrder(t reflect.Type, path string) []int {
	var key []int
	for path != "" {
		name := path
		if i := strings.IndexAny(path, ".["); i >= 0 {
			name, path = path[:i], path[i:]
		} else {
			path = ""
		}
		idx, next := maxField, reflect.Type(nil)
		if f, ok := fieldByKey(t, name); ok {
			idx, next = f.Index[0], f.Type
		}
		key = append(key, idx)
		t = next
		for strings.HasPrefix(path, "[") {
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return key
			}
			n, _ := strconv.Atoi(path[1:end])
			key = append(key, n)
			path = path[end+1:]
			if t != nil && t.Kind() == reflect.Slice {
				t = t.Elem()
			}
		}
		path = strings.TrimPrefix(path, ".")
	}
	return key
}

// maxField sorts unknown keys after every field of a struct.
const maxField = 1 << 20
