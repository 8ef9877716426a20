package config

import (
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// A walker goes over the YAML tree (maps with lower-cased keys, []any and
// scalars, as viper hands it over) alongside the struct type that will
// hold it, before mapstructure decodes it. It reports unknown keys and
// mappings or lists of the wrong shape, applies environment overrides to
// leaf keys and expands ${NAME} in the other strings. It removes what it
// reports, so that the decoder does not report it a second time.
type walker struct {
	prefix    string // of override variables: "OXBROKER_" or "OXGATEWAY_"
	lookupEnv func(string) (string, bool)
	errs      Errors
}

func (w *walker) node(m map[string]any, t reflect.Type, path string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if _, ok := fieldByKey(t, k); !ok {
			msg := msgUnknownKey
			if s := suggestKey(t, k); s != "" {
				msg += "; did you mean " + s + "?"
			}
			w.errs.add(join(path, k), msg)
			delete(m, k)
		}
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue // not a key: what loading found (Agent.warnings)
		}
		key := f.Tag.Get("mapstructure")
		p := join(path, key)
		v, present := m[key]
		present = present && v != nil // YAML null is the same as absent
		switch {
		case isNode(f.Type):
			// Walk absent mappings too: an override may set a key below.
			sub, ok := v.(map[string]any)
			if present && !ok {
				w.errs.add(p, "must be a mapping")
			}
			if sub == nil {
				sub = map[string]any{}
			}
			w.node(sub, f.Type, p)
			if len(sub) > 0 {
				m[key] = sub
			} else {
				delete(m, key)
			}
		case isList(f.Type):
			if !present {
				continue
			}
			list, ok := v.([]any)
			if !ok {
				w.errs.add(p, "must be a list")
				delete(m, key)
				continue
			}
			for j, item := range list {
				ip := p + "[" + strconv.Itoa(j) + "]"
				sub, ok := item.(map[string]any)
				if !ok {
					w.errs.add(ip, "must be a mapping")
					sub = map[string]any{}
				}
				w.node(sub, f.Type.Elem(), ip)
				list[j] = sub
			}
		default:
			if s, ok := w.lookupEnv(w.prefix + envName(p)); ok {
				m[key] = overrideValue(s, f.Type)
			} else if present {
				m[key] = w.expandValue(v, p)
			}
		}
	}
}

// expandValue expands a string, or the strings of a list of strings.
func (w *walker) expandValue(v any, path string) any {
	switch v := v.(type) {
	case string:
		return w.expand(v, path)
	case []any:
		for i, item := range v {
			if s, ok := item.(string); ok {
				v[i] = w.expand(s, path+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	return v
}

func (w *walker) expand(s, path string) string {
	out, err := expand(s, w.lookupEnv)
	if err != nil {
		w.errs.add(path, err.Error())
	}
	return out
}

// overrideValue is the tree value an override variable stands for: lists
// are comma-separated, everything else is the string itself (the decoder
// parses numbers, booleans, durations and sizes from strings).
func overrideValue(s string, t reflect.Type) any {
	if t.Kind() != reflect.Slice {
		return s
	}
	list := []any{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list
}

// envName is the override variable suffix of a key path:
// "sites[0].auth.token" becomes "SITES_0_AUTH_TOKEN".
func envName(path string) string {
	return strings.ToUpper(strings.NewReplacer(".", "_", "[", "_", "]", "").Replace(path))
}

// isNode reports whether t is a mapping of known keys; Date is a struct
// but a scalar in YAML.
func isNode(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != reflect.TypeFor[Date]()
}

// isList reports whether t is a list of mappings, such as sites.
func isList(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && isNode(t.Elem())
}

// fieldByKey finds the field of struct type t that YAML key holds.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	if t == nil || !isNode(t) {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && f.Tag.Get("mapstructure") == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// msgUnknownKey starts the message of a key the schema does not have.
const msgUnknownKey = "unknown key"

// suggestKey returns the key of struct type t closest to the unknown key
// k, when one is close enough to be a misspelling (token_fle, tokenfile,
// Token-File): at most a third of its letters differ. "" otherwise.
func suggestKey(t reflect.Type, k string) string {
	norm := func(s string) string { return strings.NewReplacer("-", "_", " ", "_").Replace(strings.ToLower(s)) }
	best, bestD := "", len(k)/3+1
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key := f.Tag.Get("mapstructure")
		d := editDistance(norm(k), key)
		if strings.ReplaceAll(norm(k), "_", "") == strings.ReplaceAll(key, "_", "") {
			d = 1 // only the separators differ
		}
		if d < bestD {
			best, bestD = key, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b,
// in bytes: insertions, deletions, substitutions and swaps of two
// neighbours ("emial") count one each.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
