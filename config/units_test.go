package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"100", 100, true},
		{"0", 0, true},
		{"100B", 100, true},
		{"512KiB", 512 << 10, true},
		{"50MiB", 50 << 20, true},
		{"1GiB", 1 << 30, true},
		{"10MB", 10_000_000, true},
		{"2KB", 2000, true},
		{"3GB", 3_000_000_000, true},
		{" 50 MiB ", 50 << 20, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5GiB", 0, false},
		{"10mb", 0, false},
		{"10TB", 0, false},
		{"12XB", 0, false},
		{"10 MiB extra", 0, false},
		{"9999999999GiB", 0, false},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseByteSize(%q): got %d, %v, want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0"},
		{100, "100"},
		{1024, "1KiB"},
		{2000, "2KB"},
		{50 << 20, "50MiB"},
		{10_000_000, "10MB"},
		{1 << 30, "1GiB"},
		{1536 << 20, "1536MiB"},
		{1025, "1025"},
		{-5, "-5"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String(): got %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in < 0 {
			continue
		}
		back, err := ParseByteSize(tt.want)
		if err != nil || back != tt.in {
			t.Errorf("ParseByteSize(%q): got %d, %v, want %d", tt.want, back, err, tt.in)
		}
	}
}

func TestDate(t *testing.T) {
	want := Date{time.Date(2027, 11, 28, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name string
		in   any // what YAML hands the decoder
		want Date
		ok   bool
	}{
		{"quoted", "2027-11-28", want, true},
		{"unquoted, as a time", time.Date(2027, 11, 28, 0, 0, 0, 0, time.UTC), want, true},
		{"empty", "", Date{}, true},
		{"time of day", time.Date(2027, 11, 28, 10, 0, 0, 0, time.UTC), Date{}, false},
		{"bad month", "2027-13-01", Date{}, false},
		{"other layout", "28/11/2027", Date{}, false},
		{"number", 20271128, Date{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeHook(nil, dateType, tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("got error %v, want ok=%v", err, tt.ok)
			}
			if err == nil && got.(Date) != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	if got := want.String(); got != "2027-11-28" {
		t.Errorf("String: got %q, want %q", got, "2027-11-28")
	}
	js, err := json.Marshal(struct{ D Date }{want})
	if err != nil || string(js) != `{"D":"2027-11-28"}` {
		t.Errorf("json.Marshal: got %s, %v, want %s", js, err, `{"D":"2027-11-28"}`)
	}
	var back struct{ D Date }
	if err := json.Unmarshal(js, &back); err != nil || back.D != want {
		t.Errorf("json.Unmarshal: got %v, %v, want %v", back.D, err, want)
	}
}

// TestDecodeValues goes through the whole parser, where YAML picks the Go
// type of each value.
func TestDecodeValues(t *testing.T) {
	tests := []struct {
		name, site string // lines added to sites[0]
		get        func(Site) any
		want       any
		err        string
	}{
		{"duration", "timeout: 60s", func(s Site) any { return s.Timeout }, time.Minute, ""},
		{"compound duration", "timeout: 1m30s", func(s Site) any { return s.Timeout }, 90 * time.Second, ""},
		{"duration without unit", "timeout: 60", nil, nil, "sites[0].timeout: must be a duration such as 60s, 1m30s or 500ms"},
		{"size as number", "max_body: 1048576", func(s Site) any { return s.MaxBody }, ByteSize(1 << 20), ""},
		{"size with unit", "max_body: 512KiB", func(s Site) any { return s.MaxBody }, ByteSize(512 << 10), ""},
		{"size as float", "max_body: 1.5", nil, nil, "sites[0].max_body: must be a size such as 50MiB, 512KiB, 10MB or 1048576"},
		{"size unit", "max_body: 5PB", nil, nil, "sites[0].max_body: unknown size unit; use B, KB, MB, GB, KiB, MiB or GiB"},
		{"unquoted date", "auth: {type: bearer, token: t, expires: 2027-11-28}", func(s Site) any { return s.Auth.Expires.String() }, "2027-11-28", ""},
		{"integral float", "max_concurrent: 8.0", func(s Site) any { return s.MaxConcurrent }, 8, ""},
		{"fractional int", "max_concurrent: 8.5", nil, nil, "sites[0].max_concurrent: must be an integer"},
		{"quoted int", `max_concurrent: "8"`, func(s Site) any { return s.MaxConcurrent }, 8, ""},
		{"bool", "tls: {insecure_skip_verify: yes}", nil, nil, "sites[0].tls.insecure_skip_verify: must be true or false"},
		{"list item", "allow: {scopes: [read:jira-work, 7]}", nil, nil, "sites[0].allow.scopes[1]: must be a string (quote the value)"},
		{"mapping for a string", "type: {a: b}", nil, nil, "sites[0].type: must be a string (quote the value)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := "broker: {id: acme, token: t}\ngateway: {address: \"gw.example:443\"}\n" +
				"sites:\n  - name: jira\n    url: https://jira.acme.local\n    " + tt.site + "\n"
			if !strings.Contains(tt.site, "auth:") {
				cfg += "    auth: {type: bearer, token: t}\n"
			}
			a, err := ParseAgent([]byte(cfg), lookup(nil))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err+" (line 6)" { // the line of tt.site
					t.Fatalf("got error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(a.Sites[0]); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		60 * time.Second:        "60s",
		90 * time.Second:        "90s",
		2 * time.Hour:           "7200s",
		500 * time.Millisecond:  "500ms",
		1500 * time.Millisecond: "1.5s",
		0:                       "0s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v): got %q, want %q", d, got, want)
		}
	}
}
