package replace

import (
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

const benchToken = "jira-tok-3f9a1c7e0b1d4e5f6a7b8c9d"

// benchRules are the rules of a Data Center site with a bearer token:
// the credential and the links, each also JSON-escaped.
func benchRules() []Rule {
	return []Rule{
		{Old: benchToken, New: strings.Repeat("*", len(benchToken))},
		{Old: "https://jira.acme.local/rest/", New: "https://broker.ox.security/b/acme/jira/rest/", Class: 1},
		{Old: `https:\/\/jira.acme.local\/rest\/`, New: `https:\/\/broker.ox.security\/b\/acme\/jira\/rest\/`, Class: 1},
	}
}

// issueJSON is about 4 KiB of a Jira issue's JSON, links included.
func issueJSON() string {
	var b strings.Builder
	b.WriteString(`{"expand":"renderedFields,names,schema,operations","id":"10001","self":"https://jira.acme.local/rest/api/3/issue/10001","key":"ABC-1","fields":{`)
	for i := 0; b.Len() < 4000; i++ {
		b.WriteString(`"customfield_1` + string(rune('0'+i%10)) + `":{"self":"https://jira.acme.local/rest/api/3/customFieldOption/1","value":"the quick brown fox has watched the hierarchy","avatarUrls":{"48x48":"https://avatar-management.services.atlassian.com/x.png"}},`)
	}
	b.WriteString(`"summary":"hello"}}`)
	return b.String()
}

// BenchmarkReader4KiB is the body of a typical issue GET: 4 KiB of JSON
// read through a Reader with the link and credential rules.
func BenchmarkReader4KiB(b *testing.B) {
	r := New(benchRules()...)
	body := issueJSON()
	src := strings.NewReader(body)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(body)
		z := r.NewReader(src)
		for {
			if _, err := z.Read(buf); err != nil {
				break
			}
		}
		z.Close()
	}
}

// BenchmarkReaderBinary is an attachment download: random bytes read
// through a Reader with the credential rule only.
func BenchmarkReaderBinary(b *testing.B) {
	r := New(benchRules()[0])
	data := make([]byte, 1<<20)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	src := &loopReader{data: data}
	buf := make([]byte, 32<<10)
	b.Run("replaced", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			src.off = 0
			z := r.NewReader(src)
			for {
				if _, err := z.Read(buf); err != nil {
					break
				}
			}
			z.Close()
		}
	})
	// What reading the data costs without the Reader.
	b.Run("baseline", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			src.off = 0
			for {
				if _, err := src.Read(buf); err != nil {
					break
				}
			}
		}
	})
}

type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	if l.off == len(l.data) {
		return 0, io.EOF
	}
	n := copy(p, l.data[l.off:])
	l.off += n
	return n, nil
}
