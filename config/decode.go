package config

import (
	"bytes"
	"errors"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// decoded is what decode learnt besides the struct itself.
type decoded struct {
	errs Errors
	// warnings are problems that do not stop loading (a token file
	// others may read).
	warnings Errors
	// set holds the key paths the file or an override gave a value
	// ("admin.listen", "sites[0].timeout"): defaults fill only the others,
	// so that an explicit `listen: ""` stays off.
	set map[string]bool
	// lines holds the line of each key path the file has.
	lines map[string]int
}

// decode reads YAML data into out, a pointer to Agent or Gateway, with
// ${NAME} and the overrides of prefix resolved by lookupEnv (nil:
// os.LookupEnv). Only a YAML syntax error stops it; every other problem is
// collected in the result so that all of them are reported together.
func decode(data []byte, prefix string, lookupEnv func(string) (string, bool), out any) (*decoded, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		// yaml's message for a document that is not a mapping quotes the
		// start of the value, which could be a token.
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) == nil && len(doc.Content) == 1 && doc.Content[0].Kind != yaml.MappingNode {
			return nil, errors.New("yaml: the document must be a mapping of keys")
		}
		// Drop viper's "While parsing config:" in favour of yaml's own
		// "yaml: line 3: ..." message.
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return nil, err
	}
	tree := v.AllSettings()

	w := walker{prefix: prefix, lookupEnv: lookupEnv}
	w.node(tree, reflect.TypeOf(out).Elem(), "")

	var md mapstructure.Metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:  decodeHook,
		ErrorUnused: true, // the walker removed unknown keys; this is a backstop
		Metadata:    &md,
		Result:      out,
	})
	if err != nil {
		return nil, err
	}
	if err := dec.Decode(tree); err != nil {
		collectDecodeErrors(err, &w.errs)
	}
	d := &decoded{errs: w.errs, set: make(map[string]bool, len(md.Keys)), lines: keyLines(data)}
	for _, k := range md.Keys {
		d.set[k] = true
	}
	return d, nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
	dateType     = reflect.TypeFor[Date]()
)

// decodeHook converts YAML scalars, and the strings that overrides and
// ${NAME} expansion produce, to the types of the config structs. Its
// errors become the messages users see, so they never quote the value: it
// might be a token typed into the wrong key.
func decodeHook(_, to reflect.Type, data any) (any, error) {
	switch to {
	case durationType:
		s, ok := data.(string)
		d, err := time.ParseDuration(s)
		if !ok || err != nil {
			return nil, errors.New("must be a duration such as 60s, 1m30s or 500ms")
		}
		return d, nil
	case byteSizeType:
		switch n := data.(type) {
		case string:
			return ParseByteSize(n)
		case int:
			return ByteSize(n), nil
		case uint64:
			if n <= math.MaxInt64 {
				return ByteSize(n), nil
			}
		}
		return nil, errByteSize
	case dateType:
		switch d := data.(type) {
		case string:
			return ParseDate(d)
		case time.Time:
			return dateOf(d)
		}
		return nil, errDate
	}
	switch to.Kind() {
	case reflect.String:
		// Refuse numbers and booleans rather than guess how YAML read
		// them: `token: 0x1f...` is a number, `id: 012` is 10.
		if _, ok := data.(string); !ok {
			return nil, errors.New("must be a string (quote the value)")
		}
	case reflect.Int:
		switch n := data.(type) {
		case string:
			i, err := strconv.Atoi(n)
			if err != nil {
				return nil, errors.New("must be an integer")
			}
			return i, nil
		case float64:
			if n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
				return nil, errors.New("must be an integer")
			}
			return int(n), nil
		}
	case reflect.Slice:
		if _, ok := data.([]any); !ok {
			return nil, errors.New("must be a list")
		}
	case reflect.Bool:
		if s, ok := data.(string); ok {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return nil, errors.New("must be true or false")
			}
			return b, nil
		}
	}
	return data, nil
}

// collectDecodeErrors turns mapstructure's tree of joined errors into
// "path: message" problems. mapstructure names fields by their key path
// in the same "sites[0].auth.type" form.
func collectDecodeErrors(err error, errs *Errors) {
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			collectDecodeErrors(inner, errs)
		}
	case *mapstructure.DecodeError:
		errs.add(e.Name(), decodeMessage(e.Unwrap()))
	case interface{ Unwrap() error }:
		collectDecodeErrors(e.Unwrap(), errs)
	default:
		errs.add("", err.Error())
	}
}

// decodeMessage words a mapstructure type mismatch for users, without
// mapstructure's Go type names.
func decodeMessage(err error) string {
	var t reflect.Type
	var ue *mapstructure.UnconvertibleTypeError
	var pe *mapstructure.ParseError
	switch {
	case errors.As(err, &ue):
		t = ue.Expected.Type()
	case errors.As(err, &pe):
		t = pe.Expected.Type()
	default:
		return err.Error()
	}
	switch t.Kind() {
	case reflect.String:
		return "must be a string"
	case reflect.Int, reflect.Int64:
		return "must be an integer"
	case reflect.Bool:
		return "must be true or false"
	case reflect.Slice:
		return "must be a list"
	case reflect.Struct, reflect.Map:
		return "must be a mapping"
	}
	return "has the wrong type"
}

// keyLines maps the key paths of a YAML document ("sites[1].auth.token")
// to the lines that hold them. Keys are lower-cased, as viper reads them.
func keyLines(data []byte) map[string]int {
	lines := make(map[string]int)
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) != 1 {
		return lines
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				p := join(path, strings.ToLower(k.Value))
				lines[p] = k.Line
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, item := range n.Content {
				p := path + "[" + strconv.Itoa(i) + "]"
				lines[p] = item.Line
				walk(item, p)
			}
		case yaml.AliasNode:
			if n.Alias != nil {
				walk(n.Alias, path)
			}
		}
	}
	walk(doc.Content[0], "")
	return lines
}
