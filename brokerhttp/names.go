package brokerhttp

import "regexp"

// NamePattern is the form of broker ids and site names: 1 to 63
// lowercase letters, digits or dashes, starting with a letter or digit.
// Names appear in connector URLs (/b/{broker}/{site}), in metric labels
// and in the shared registry's keys; the config, the gateway's routes and
// the registry all check this one pattern.
const NamePattern = `[a-z0-9][a-z0-9-]{0,62}`

var nameRE = regexp.MustCompile(`^` + NamePattern + `$`)

// ValidName reports whether s is a broker id or site name: whether all of
// s matches NamePattern.
func ValidName(s string) bool { return nameRE.MatchString(s) }
