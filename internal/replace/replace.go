// Package replace replaces literal strings in text and in byte streams, in
// one pass, with memory bounded by the longest string it looks for.
//
// A Replacer holds rules, each an Old string and the New string that
// replaces it. The text is read from left to right; at each position the
// longest Old that starts there is replaced (among rules with the same Old,
// the first given), and reading goes on after it, so that matches never
// overlap and a replacement is never read again. Where no Old starts, the
// byte is kept. A Reader gives exactly what String gives for the whole
// text, wherever its source cuts the stream: it holds back at most the
// length of the longest Old minus one byte until it can tell.
//
// The agent uses it to rewrite Jira's links and to remove a site's
// credential from responses; replace itself knows nothing of either.
package replace

import (
	"bytes"
	"cmp"
	"io"
	"slices"
	"strings"
	"sync"
)

// Rule is one string to replace and its replacement.
type Rule struct {
	Old, New string
	// Class groups rules for counting: each replacement adds one to the
	// count of its rule's class (Reader.Count, String's counts). It must
	// not be negative.
	Class int
}

// Replacer replaces the Old strings of its rules. It is immutable and safe
// for concurrent use.
type Replacer struct {
	rules []Rule
	// byFirst lists, for each byte, the rules whose Old starts with it,
	// longest first and in the order given among equal lengths: the
	// first that matches at a position is the one the package doc says.
	byFirst [256][]int
	// longest is, for each byte, the length of the longest Old starting
	// with it: how much text a decision at that byte needs.
	longest [256]int
	// firsts are the distinct first bytes, in which matches can start.
	firsts  []byte
	maxLen  int
	classes int
	// sameLength is true when every New is as long as its Old: a Reader
	// then replaces in the caller's buffer (readInPlace).
	sameLength bool
}

// New returns a Replacer of rules. Rules with an empty Old are ignored.
// It panics on a negative Class.
func New(rules ...Rule) *Replacer {
	r := &Replacer{sameLength: true}
	for _, rule := range rules {
		if rule.Class < 0 {
			panic("replace: negative class")
		}
		if rule.Old == "" {
			continue
		}
		k := len(r.rules)
		r.rules = append(r.rules, rule)
		b := rule.Old[0]
		if r.byFirst[b] == nil {
			r.firsts = append(r.firsts, b)
		}
		r.byFirst[b] = append(r.byFirst[b], k)
		r.longest[b] = max(r.longest[b], len(rule.Old))
		r.maxLen = max(r.maxLen, len(rule.Old))
		r.classes = max(r.classes, rule.Class+1)
		r.sameLength = r.sameLength && len(rule.New) == len(rule.Old)
	}
	for _, b := range r.firsts {
		slices.SortStableFunc(r.byFirst[b], func(i, j int) int {
			return cmp.Compare(len(r.rules[j].Old), len(r.rules[i].Old))
		})
	}
	return r
}

// MaxLen is the length of the longest Old: a Reader holds back less than
// that.
func (r *Replacer) MaxLen() int { return r.maxLen }

// Classes is one more than the largest Class of the rules: the length of
// a counts slice that has room for every class.
func (r *Replacer) Classes() int { return r.classes }

// matchAt returns the rule that matches buf at i, or -1.
func (r *Replacer) matchAt(buf []byte, i int) int {
	rest := buf[i:]
	for _, k := range r.byFirst[buf[i]] {
		old := r.rules[k].Old
		// The second byte first: most candidates fail there, and the
		// check is cheaper than the comparison.
		if len(rest) >= len(old) && (len(old) == 1 || rest[1] == old[1]) && string(rest[:len(old)]) == old {
			return k
		}
	}
	return -1
}

// scan looks in buf, from i on, for the next match. It returns its
// position and rule, or, with rule -1, the position up to which buf holds
// no match: len(buf), or, unless atEOF, the first position where a match
// might start that more text is needed to decide.
func (r *Replacer) scan(f *finder, buf []byte, i int, atEOF bool) (pos, rule int) {
	if len(r.firsts) == 1 {
		// One byte to look for, as with a bearer token alone: no finder
		// to keep, and the loop stays tight for long binary bodies.
		b := r.firsts[0]
		for {
			j := bytes.IndexByte(buf[i:], b)
			if j < 0 {
				return len(buf), -1
			}
			c := i + j
			if !atEOF && len(buf)-c < r.longest[b] {
				return c, -1
			}
			if k := r.matchAt(buf, c); k >= 0 {
				return c, k
			}
			i = c + 1
		}
	}
	for {
		c := f.next(buf, i)
		if c < 0 {
			return len(buf), -1
		}
		if !atEOF && len(buf)-c < r.longest[buf[c]] {
			return c, -1
		}
		if k := r.matchAt(buf, c); k >= 0 {
			return c, k
		}
		i = c + 1
	}
}

// String returns s with every match replaced, and adds the replacements
// made to counts (indexed by class; a nil or short counts is fine, the
// classes it has no room for are not counted). It returns s itself when
// nothing matched.
func (r *Replacer) String(s string, counts []int) string {
	if len(r.firsts) == 0 || !r.mayMatch(s) {
		return s
	}
	buf := []byte(s)
	var f finder
	f.init(r.firsts)
	var out []byte
	done := 0 // buf[:done] is in out
	for i := 0; i < len(buf); {
		pos, k := r.scan(&f, buf, i, true)
		if k < 0 {
			break
		}
		rule := &r.rules[k]
		if out == nil {
			out = make([]byte, 0, len(s)+len(rule.New))
		}
		out = append(out, buf[done:pos]...)
		out = append(out, rule.New...)
		i = pos + len(rule.Old)
		done = i
		if rule.Class < len(counts) {
			counts[rule.Class]++
		}
	}
	if out == nil {
		return s
	}
	return string(append(out, buf[done:]...))
}

// mayMatch reports whether s holds a byte a match could start with.
func (r *Replacer) mayMatch(s string) bool {
	for _, b := range r.firsts {
		if strings.IndexByte(s, b) >= 0 {
			return true
		}
	}
	return false
}

// finder finds the next position of any of a few bytes, with
// bytes.IndexByte: for each byte it remembers where that byte next
// occurs, so that each occurrence is searched for once. Its memory is
// valid for one buffer and positions that only grow; reset it when the
// buffer changes.
type finder struct {
	bytes []byte
	// at[k] is the position of bytes[k] found last, -1 if there is none
	// after it, or -2 if not searched yet.
	at    []int
	small [8]int
}

func (f *finder) init(b []byte) {
	f.bytes = b
	if len(b) <= len(f.small) {
		f.at = f.small[:len(b)]
	} else {
		f.at = make([]int, len(b))
	}
	f.reset()
}

func (f *finder) reset() {
	for k := range f.at {
		f.at[k] = -2
	}
}

// next returns the first position at or after i of one of the bytes, or
// -1.
func (f *finder) next(buf []byte, i int) int {
	best := -1
	for k, b := range f.bytes {
		at := f.at[k]
		if at == -1 {
			continue
		}
		if at < i {
			j := bytes.IndexByte(buf[i:], b)
			if j < 0 {
				f.at[k] = -1
				continue
			}
			at = i + j
			f.at[k] = at
		}
		if best < 0 || at < best {
			best = at
		}
	}
	return best
}

// bufSize is the size of a Reader's buffer (more when MaxLen needs it).
const bufSize = 32 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Reader reads its source with every match replaced. It reads the source
// in chunks of up to 32 KiB and holds back less than MaxLen bytes between
// chunks, whatever the size of the stream. It is not safe for concurrent
// use.
type Reader struct {
	r   *Replacer
	src io.Reader
	f   finder

	buf   []byte // the text read and not yet passed on is buf[start:]
	start int
	safe  int    // buf[start:safe] holds no match: passed on as it is
	match int    // the rule that matches at safe, or -1
	rep   string // the rest of a replacement being passed on
	err   error  // the source's error, once it returned one
	owned *[]byte
	// carry is the text readInPlace held back, which the next read puts
	// first.
	carry []byte

	counts []int
}

// NewReader returns a Reader of src with r's replacements. Close it to
// give its buffer back.
func (r *Replacer) NewReader(src io.Reader) *Reader {
	z := &Reader{r: r, src: src, match: -1, counts: make([]int, r.classes)}
	z.f.init(r.firsts)
	return z
}

// Count returns the replacements of rules of class made so far.
func (z *Reader) Count(class int) int {
	if class < 0 || class >= len(z.counts) {
		return 0
	}
	return z.counts[class]
}

// Read reads the replaced text. At the end of the source it returns the
// source's io.EOF. When the source fails, it passes on what it can decide
// without more text, then returns the source's error, dropping what it
// held back: that could be the start of a match, which must not leave
// unreplaced.
func (z *Reader) Read(p []byte) (int, error) {
	if z.r.sameLength && len(p) >= 2*z.r.maxLen && z.rep == "" && z.start == len(z.buf) {
		return z.readInPlace(p)
	}
	if len(z.carry) > 0 {
		z.takeCarry()
	}
	// Read fills p as far as it can without waiting for the source, so
	// that a caller who writes what it reads (and flushes each write, as
	// httputil.ReverseProxy does for bodies of unknown length) gets large
	// pieces rather than one per match.
	n := 0
	for n < len(p) {
		if z.rep != "" {
			m := copy(p[n:], z.rep)
			z.rep = z.rep[m:]
			n += m
			continue
		}
		if z.start < z.safe {
			m := copy(p[n:], z.buf[z.start:z.safe])
			z.start += m
			n += m
			continue
		}
		if z.match >= 0 {
			rule := &z.r.rules[z.match]
			z.start += len(rule.Old)
			z.safe, z.match, z.rep = z.start, -1, rule.New
			z.counts[rule.Class]++
			continue
		}
		if z.start < len(z.buf) {
			z.safe, z.match = z.r.scan(&z.f, z.buf, z.start, z.err == io.EOF)
			if z.safe > z.start || z.match >= 0 {
				continue
			}
		}
		if n > 0 {
			return n, nil
		}
		if z.err != nil {
			return 0, z.err
		}
		z.fill()
	}
	return n, nil
}

// readInPlace is Read for replacers whose replacements keep the length,
// when p has room for the text held back and more: the source is read
// into p and matches are replaced there, which saves copying every byte
// through the Reader's buffer (a 100 MiB download goes this way). The
// text held back is kept in carry and put first in the next read.
func (z *Reader) readInPlace(p []byte) (int, error) {
	n := copy(p, z.carry)
	z.carry = z.carry[:0]
	for {
		if z.err == nil {
			m, err := z.src.Read(p[n:])
			n += m
			z.err = err
		}
		hold := z.replaceInPlace(p[:n], z.err == io.EOF)
		if hold > 0 {
			z.carry = append(z.carry, p[hold:n]...)
			return hold, nil
		}
		if z.err != nil {
			// At io.EOF nothing is held back; after another error what
			// is held back is dropped (see Read).
			return 0, z.err
		}
		// Everything read may be the start of a match: read more. p has
		// room, since less than MaxLen is held back.
	}
}

// replaceInPlace replaces the matches of buf in buf and returns the
// position from which the text must be held back.
func (z *Reader) replaceInPlace(buf []byte, atEOF bool) int {
	z.f.reset()
	for i := 0; ; {
		pos, k := z.r.scan(&z.f, buf, i, atEOF)
		if k < 0 {
			return pos
		}
		rule := &z.r.rules[k]
		copy(buf[pos:], rule.New)
		z.counts[rule.Class]++
		i = pos + len(rule.Old)
	}
}

// takeCarry moves the text readInPlace held back into the buffer, for a
// read too small to go in place.
func (z *Reader) takeCarry() {
	z.alloc()
	z.buf = append(z.buf[:0], z.carry...)
	z.start, z.safe, z.match = 0, 0, -1
	z.carry = z.carry[:0]
	z.f.reset()
}

func (z *Reader) alloc() {
	if z.buf != nil {
		return
	}
	if z.r.maxLen*2 <= bufSize {
		z.owned = buffers.Get().(*[]byte)
		z.buf = (*z.owned)[:0]
	} else {
		z.buf = make([]byte, 0, 2*z.r.maxLen)
	}
}

// fill moves the text held back to the front of the buffer and reads more
// after it.
func (z *Reader) fill() {
	z.alloc()
	n := copy(z.buf[:cap(z.buf)], z.buf[z.start:])
	z.buf = z.buf[:n]
	z.start, z.safe = 0, 0
	m, err := z.src.Read(z.buf[n:cap(z.buf)])
	z.buf = z.buf[:n+m]
	if err != nil {
		z.err = err
	}
	z.f.reset()
}

// Close gives the Reader's buffer back; the Reader must not be used
// after. It does not close the source.
func (z *Reader) Close() error {
	if z.owned != nil {
		buffers.Put(z.owned)
		z.owned = nil
	}
	z.buf, z.start, z.safe, z.match, z.rep, z.carry = nil, 0, 0, -1, "", nil
	z.err = io.ErrClosedPipe
	return nil
}
