package config

import (
	"bytes"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Redacted returns the effective agent config as YAML, with the keys of
// the file in the order of the documentation, for `oxbroker config show`.
// Tokens print as REDACTED (or "" when unset), URL passwords as
// user:REDACTED, durations as "60s", sizes as "50MiB" and dates as
// 2006-01-02.
func (a *Agent) Redacted() ([]byte, error) { return redactedYAML(reflect.ValueOf(a).Elem()) }

// Redacted returns the effective gateway config as YAML, as Agent.Redacted
// does. Broker and connector token hashes are shown: they are not secret.
func (g *Gateway) Redacted() ([]byte, error) { return redactedYAML(reflect.ValueOf(g).Elem()) }

func redactedYAML(v reflect.Value) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(yamlNode(v)); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// yamlNode builds the YAML of a config value by hand, rather than with
// yaml.Marshal, to keep field order and to control how each type prints.
func yamlNode(v reflect.Value) *yaml.Node {
	switch x := v.Interface().(type) {
	case Secret:
		if x.IsZero() {
			return scalar("!!str", "")
		}
		return scalar("!!str", Redacted)
	case time.Duration:
		return scalar("!!str", formatDuration(x))
	case ByteSize:
		return scalar("!!str", x.String())
	case Date:
		if x.IsZero() {
			return scalar("!!str", "")
		}
		return scalar("!!timestamp", x.String())
	}
	switch v.Kind() {
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				continue // not a key: what loading found (Agent.warnings)
			}
			key := v.Type().Field(i).Tag.Get("mapstructure")
			n.Content = append(n.Content, scalar("!!str", key), yamlNode(v.Field(i)))
		}
		return n
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i := range v.Len() {
			n.Content = append(n.Content, yamlNode(v.Index(i)))
		}
		return n
	case reflect.String:
		return scalar("!!str", redactURL(v.String()))
	case reflect.Int:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool()))
	}
	// fmt prints a Secret nested in any other type as REDACTED.
	return scalar("!!str", fmt.Sprint(v.Interface()))
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

// redactURL hides the password of a URL such as a proxy's
// http://user:pass@host:3128 or a redis://:pass@host URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// An unparsable URL may still hold a password.
		if strings.Contains(s, "@") {
			return Redacted
		}
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	u.User = url.UserPassword(u.User.Username(), Redacted)
	return u.String()
}
