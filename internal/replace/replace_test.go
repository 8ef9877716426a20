package replace

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// reference is the whole-text replacement the package doc defines, in
// its plainest form: at each position, the longest Old that starts there
// (the first given among equal ones) is replaced; else the byte is kept.
// Reader and String must give exactly what it gives.
func reference(rules []Rule, s []byte) ([]byte, []int) {
	var out []byte
	counts := make([]int, 0)
	for _, r := range rules {
		for len(counts) <= r.Class {
			counts = append(counts, 0)
		}
	}
	for i := 0; i < len(s); {
		best := -1
		for k, r := range rules {
			if r.Old != "" && bytes.HasPrefix(s[i:], []byte(r.Old)) && (best < 0 || len(r.Old) > len(rules[best].Old)) {
				best = k
			}
		}
		if best < 0 {
			out = append(out, s[i])
			i++
			continue
		}
		out = append(out, rules[best].New...)
		counts[rules[best].Class]++
		i += len(rules[best].Old)
	}
	return out, counts
}

// chunkReader returns its text in pieces of the given sizes, in turn.
type chunkReader struct {
	s     []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.s) == 0 {
		return 0, io.EOF
	}
	n := len(c.s)
	if len(c.sizes) > 0 {
		n = c.sizes[c.i%len(c.sizes)]
		c.i++
	}
	n = min(n, len(p), len(c.s))
	copy(p, c.s[:n])
	c.s = c.s[n:]
	return n, nil
}

// readAll reads z with reads of the given sizes, in turn.
func readAll(t testing.TB, z *Reader, sizes []int) []byte {
	t.Helper()
	var out []byte
	for i := 0; ; i++ {
		n := 64 << 10
		if len(sizes) > 0 {
			n = sizes[i%len(sizes)]
		}
		buf := make([]byte, n)
		m, err := z.Read(buf)
		out = append(out, buf[:m]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if i > 10*len(out)+1000 {
			t.Fatal("Read makes no progress")
		}
	}
}

func TestReplace(t *testing.T) {
	tok := "tok/123"
	rules := []Rule{
		{Old: tok, New: "XXXXXXX"},
		{Old: "Bearer " + tok, New: "REDACTED******", Class: 0},
		{Old: `tok\/123`, New: "XXXXXXXX"},
		{Old: "https://jira/rest/", New: "https://gw/b/a/s/rest/", Class: 1},
		{Old: `https:\/\/jira\/rest\/`, New: `https:\/\/gw\/b\/a\/s\/rest\/`, Class: 1},
	}
	tests := []struct {
		name, in, want string
		counts         []int
	}{
		{"nothing", "plain text with h and t", "plain text with h and t", []int{0, 0}},
		{"empty", "", "", []int{0, 0}},
		{"longest wins", "Authorization: Bearer tok/123.", "Authorization: REDACTED******.", []int{1, 0}},
		{"raw token", "x tok/123 y", "x XXXXXXX y", []int{1, 0}},
		{"escaped", `"a":"tok\/123"`, `"a":"XXXXXXXX"`, []int{1, 0}},
		{"link", `{"self":"https://jira/rest/api/3/issue/1"}`, `{"self":"https://gw/b/a/s/rest/api/3/issue/1"}`, []int{0, 1}},
		{"escaped link", `{"self":"https:\/\/jira\/rest\/api"}`, `{"self":"https:\/\/gw\/b\/a\/s\/rest\/api"}`, []int{0, 1}},
		{"browse link kept", "https://jira/browse/A-1", "https://jira/browse/A-1", []int{0, 0}},
		{"adjacent", "tok/123tok/123", "XXXXXXXXXXXXXX", []int{2, 0}},
		{"prefix at end", "ends with https://jira/re", "ends with https://jira/re", []int{0, 0}},
		{"replacement not read again", "https://jira/rest/https://jira/rest/", "https://gw/b/a/s/rest/https://gw/b/a/s/rest/", []int{0, 2}},
	}
	r := New(rules...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, refCounts := reference(rules, []byte(tt.in))
			if string(ref) != tt.want {
				t.Fatalf("reference: got %q, want %q", ref, tt.want)
			}
			counts := make([]int, 2)
			if got := r.String(tt.in, counts); got != tt.want {
				t.Errorf("String: got %q, want %q", got, tt.want)
			}
			if !equalInts(counts, tt.counts) || !equalInts(refCounts, tt.counts) {
				t.Errorf("counts: String %v, reference %v, want %v", counts, refCounts, tt.counts)
			}
			for _, size := range []int{1, 2, 3, 7, 1 << 20} {
				z := r.NewReader(&chunkReader{s: []byte(tt.in), sizes: []int{size}})
				got := readAll(t, z, []int{1, 5, 64})
				if string(got) != tt.want {
					t.Errorf("Reader, chunks of %d: got %q, want %q", size, got, tt.want)
				}
				if z.Count(0) != tt.counts[0] || z.Count(1) != tt.counts[1] {
					t.Errorf("Reader counts: got %d %d, want %v", z.Count(0), z.Count(1), tt.counts)
				}
				z.Close()
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStringUnchangedIsSame checks that String returns its argument
// when nothing matches, so headers that hold no match cost no copy.
func TestStringUnchangedIsSame(t *testing.T) {
	r := New(Rule{Old: "secret", New: "******"})
	in := "a header value with s and e"
	if got := r.String(in, nil); got != in {
		t.Fatalf("got %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { r.String("text/html", nil) }); n != 0 {
		t.Errorf("String of a value without a candidate byte allocates %v times", n)
	}
}

// TestReaderSourceErrorDropsHeldBack checks that a source failing in the
// middle of a possible match does not let its start through.
func TestReaderSourceErrorDropsHeldBack(t *testing.T) {
	for _, rule := range []Rule{
		{Old: "Bearer secret-token", New: "REDACTED"},
		{Old: "Bearer secret-token", New: "REDACTED***********"}, // replaced in place
	} {
		r := New(rule)
		boom := errors.New("connection reset")
		src := io.MultiReader(strings.NewReader("ok Bearer secret-to"), iotest.ErrReader(boom))
		z := r.NewReader(src)
		got, err := io.ReadAll(z)
		z.Close()
		if !errors.Is(err, boom) {
			t.Fatalf("err: got %v, want %v", err, boom)
		}
		if string(got) != "ok " {
			t.Errorf("%q: got %q, want %q: the held-back start of a match must not pass", rule.New, got, "ok ")
		}
	}
}

// TestReaderBoundedMemory streams far more than a buffer through a
// Reader and checks that it never holds more than one buffer.
func TestReaderBoundedMemory(t *testing.T) {
	r := New(Rule{Old: "needle", New: "NEEDLE"})
	const size = 8 << 20
	src := io.LimitReader(repeatReader("hay needle haystack "), size)
	z := r.NewReader(src)
	defer z.Close()
	n, err := io.Copy(io.Discard, readerFunc(func(p []byte) (int, error) {
		if cap(z.buf) > bufSize {
			t.Fatalf("buffer grew to %d", cap(z.buf))
		}
		return z.Read(p)
	}))
	if err != nil || n != size {
		t.Fatalf("copied %d, %v; want %d", n, err, size)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// repeatReader repeats s forever.
type repeatReader string

func (s repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = s[i%len(s)]
	}
	return len(p), nil
}

func TestReaderAfterClose(t *testing.T) {
	r := New(Rule{Old: "a", New: "b"})
	z := r.NewReader(strings.NewReader("aaaa"))
	buf := make([]byte, 2)
	z.Read(buf)
	z.Close()
	if _, err := z.Read(buf); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}

// FuzzReader checks Reader and String against reference for arbitrary
// rules, text, source chunks and read sizes.
func FuzzReader(f *testing.F) {
	f.Add("tok\tXXX\nBearer tok\tRRRRRRRRRR\nhttps://j/rest/\thttps://g/b/a/s/rest/", []byte("x Bearer tok https://j/rest/api tok"), []byte{1, 3, 200})
	f.Add("ab\t1\nabc\t22\nb\t\nbc\t4444", []byte("abcabcbcbab"), []byte{1})
	f.Add("aaa\tb\naa\tc", []byte("aaaaaaa"), []byte{2, 1})
	f.Add("=tok\t\nBearer tok\t\nok\t", []byte("Bearer tok tok ok to"), []byte{1, 30, 2, 90})
	f.Add("https:\\/\\/j\\/rest\\/\tX\nhttps://j/rest/\tY", []byte(`{"self":"https:\/\/j\/rest\/x","o":"https://j/rest/y"}`), []byte{5, 9})
	f.Fuzz(func(t *testing.T, spec string, text []byte, chunks []byte) {
		var rules []Rule
		// A spec starting with "=" has replacements as long as what they
		// replace, which Reader replaces in place when reads are large.
		same := strings.HasPrefix(spec, "=")
		for i, line := range strings.Split(spec, "\n") {
			if i == 8 {
				break
			}
			old, new, _ := strings.Cut(line, "\t")
			if same {
				new = strings.Repeat(string(rune('A'+i)), len(old))
			}
			rules = append(rules, Rule{Old: old, New: new, Class: i % 3})
		}
		sizes := make([]int, len(chunks))
		for i, c := range chunks {
			sizes[i] = int(c)%97 + 1
		}
		rev := make([]int, len(sizes))
		for i := range sizes {
			rev[i] = sizes[len(sizes)-1-i]
		}
		want, wantCounts := reference(rules, text)
		r := New(rules...)
		counts := make([]int, r.Classes())
		if got := r.String(string(text), counts); got != string(want) {
			t.Fatalf("String: got %q, want %q", got, want)
		}
		z := r.NewReader(&chunkReader{s: text, sizes: sizes})
		got := readAll(t, z, rev)
		z.Close()
		if !bytes.Equal(got, want) {
			t.Fatalf("Reader: got %q, want %q", got, want)
		}
		for c := range wantCounts {
			got := 0
			if c < len(counts) {
				got = counts[c]
			}
			if got != wantCounts[c] || z.Count(c) != wantCounts[c] {
				t.Fatalf("class %d: String counted %d, Reader %d, want %d", c, got, z.Count(c), wantCounts[c])
			}
		}
	})
}
