package config

import (
	"errors"
	"strings"
)

// expand replaces each ${NAME} in s by the value of the environment
// variable NAME, read once: values are not expanded again. "$${" stands
// for a literal "${". Any other "$" is kept as it is, so that a password
// such as "pa$$word" or "a$b" needs no escaping. NAME is a portable
// variable name: a letter or underscore, then letters, digits and
// underscores.
func expand(s string, lookupEnv func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 2
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", errors.New(`"${" has no closing "}" (write "$${" for a literal "${")`)
			}
			name := s[i+2 : i+end]
			if !isEnvName(name) {
				return "", errors.New(`"${...}" must hold an environment variable name (letters, digits and _)`)
			}
			val, ok := lookupEnv(name)
			if !ok {
				return "", errors.New("environment variable " + name + " is not set")
			}
			b.WriteString(val)
			i += end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

func isEnvName(name string) bool {
	for i, r := range name {
		letter := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return name != ""
}
