package config

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// byteUnits are the suffixes ParseByteSize accepts, largest first so that
// String picks the largest unit that divides a size evenly. Binary units
// come before their decimal neighbours because limits are usually powers
// of two.
var byteUnits = []struct {
	suffix string
	size   int64
}{
	{"GiB", 1 << 30},
	{"GB", 1e9},
	{"MiB", 1 << 20},
	{"MB", 1e6},
	{"KiB", 1 << 10},
	{"KB", 1e3},
	{"B", 1},
}

var errByteSize = errors.New("must be a size such as 50MiB, 512KiB, 10MB or 1048576")

// ParseByteSize parses a byte count: a whole number optionally followed by
// B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), with
// an optional space between number and unit.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, errByteSize
	}
	mult, ok := int64(1), unit == ""
	for _, u := range byteUnits {
		if u.suffix == unit {
			mult, ok = u.size, true
		}
	}
	if !ok {
		return 0, errors.New("unknown size unit; use B, KB, MB, GB, KiB, MiB or GiB")
	}
	if n > math.MaxInt64/mult {
		return 0, errors.New("size is too large")
	}
	return ByteSize(n * mult), nil
}

// String formats the size with the largest unit that divides it evenly
// ("50MiB", "10MB"), or as a plain number.
func (b ByteSize) String() string {
	for _, u := range byteUnits[:len(byteUnits)-1] {
		if b >= ByteSize(u.size) && int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalText formats the size as String does.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses the size as ParseByteSize does.
func (b *ByteSize) UnmarshalText(text []byte) error { return parseInto(b, text, ParseByteSize) }

// parseInto sets *dst to what parse makes of text, or leaves it.
func parseInto[T any](dst *T, text []byte, parse func(string) (T, error)) error {
	v, err := parse(string(text))
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// dateLayout is how a Date is written: YYYY-MM-DD.
const dateLayout = time.DateOnly

var errDate = errors.New("must be a date such as 2027-11-28")

// ParseDate parses a YYYY-MM-DD date; the empty string is the zero Date.
// The result is midnight UTC of that day.
func ParseDate(s string) (Date, error) {
	if s == "" {
		return Date{}, nil
	}
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return Date{}, errDate
	}
	return Date{t}, nil
}

// dateOf turns a time YAML decoded from an unquoted date into a Date; a
// time of day other than midnight means the value was not a plain date.
func dateOf(t time.Time) (Date, error) {
	y, m, d := t.Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if h, mi, s := t.Clock(); h != 0 || mi != 0 || s != 0 || t.Nanosecond() != 0 {
		return Date{}, errDate
	}
	return Date{day}, nil
}

// String formats the date as YYYY-MM-DD, or "" for the zero Date. It
// replaces the String of the embedded time.Time.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return d.Format(dateLayout)
}

// MarshalText formats the date as String does. Date defines its own text
// and JSON methods because those of the embedded time.Time would otherwise
// be promoted and write RFC 3339 timestamps.
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses the date as ParseDate does.
func (d *Date) UnmarshalText(text []byte) error { return parseInto(d, text, ParseDate) }

// MarshalJSON writes the date as a "YYYY-MM-DD" string.
func (d Date) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a "YYYY-MM-DD" string.
func (d *Date) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return errDate
	}
	return d.UnmarshalText([]byte(s))
}

// formatDuration writes whole seconds as "60s" rather than
// time.Duration's "1m0s", so that `config show` echoes what users write.
func formatDuration(d time.Duration) string {
	if d != 0 && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}
