package jira

import "strings"

// methodTrie holds the templates of one method.
type methodTrie struct {
	method string
	root   *node
}

// node is a trie node: one segment of a template.
type node struct {
	lits  map[string]*node // literal segments
	param *node            // a "{name}" segment
	leaf  *leaf            // a template ends here
}

// leaf is one method and template: an operation at one API version, a
// rule, or both.
type leaf struct {
	template string
	segs     []segment
	op       *operation // nil for a template only allow.rules names
	rule     bool       // allow.rules allows it
	denied   bool       // allow.deny names it
	reason   Reason     // zero when allowed
	decision Decision
	// rivals are refused leaves of the same method that match some of this
	// leaf's paths without being less literal at every segment; set only
	// on allowed leaves.
	rivals []*leaf
}

// child returns the child of n for s, adding it if needed.
func (n *node) child(s segment) *node {
	if s.param {
		if n.param == nil {
			n.param = &node{}
		}
		return n.param
	}
	if n.lits == nil {
		n.lits = map[string]*node{}
	}
	c := n.lits[s.text]
	if c == nil {
		c = &node{}
		n.lits[s.text] = c
	}
	return c
}

// findRivals sets the rivals of the allowed leaves below root: the refused
// leaves that match a common path while neither is at least as literal as
// the other at every segment.
func findRivals(root *node) {
	byLen := map[int][]*leaf{}
	var walk func(*node)
	walk = func(n *node) {
		if n.leaf != nil {
			byLen[len(n.leaf.segs)] = append(byLen[len(n.leaf.segs)], n.leaf)
		}
		for _, k := range sortedKeys(n.lits) {
			walk(n.lits[k])
		}
		if n.param != nil {
			walk(n.param)
		}
	}
	walk(root)
	for _, group := range byLen {
		for _, a := range group {
			if a.reason != 0 {
				continue
			}
			for _, b := range group {
				if b.reason != 0 && crossing(a.segs, b.segs) {
					a.rivals = append(a.rivals, b)
				}
			}
		}
	}
}

// crossing reports whether templates a and b, of the same length, match a
// common path and each has a literal where the other has a parameter.
func crossing(a, b []segment) bool {
	aLit, bLit := false, false
	for i := range a {
		switch {
		case !a[i].param && !b[i].param:
			if a[i].text != b[i].text {
				return false
			}
		case !a[i].param:
			aLit = true
		case !b[i].param:
			bLit = true
		}
	}
	return aLit && bLit
}

// trie returns the root of method's trie, or nil.
func (l *Allowlist) trie(method string) *node {
	for i := range l.tries {
		if l.tries[i].method == method {
			return l.tries[i].root
		}
	}
	return nil
}

// lookup returns the leaf whose template matches p, which is empty or
// starts with "/", preferring literal segments to parameters at each
// segment from the left; nil if none does. Each trie node is visited at
// most once, since a node's depth fixes the segment it is matched with.
func (n *node) lookup(p string) *leaf {
	if p == "" {
		return n.leaf
	}
	if p[0] != '/' {
		return nil
	}
	seg, rest := p[1:], ""
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg, rest = seg[:i], seg[i:]
	}
	if seg == "" {
		return nil
	}
	if c := n.lits[seg]; c != nil {
		if lf := c.lookup(rest); lf != nil {
			return lf
		}
	}
	if n.param != nil && validParam(seg) {
		return n.param.lookup(rest)
	}
	return nil
}

// matchSegs reports whether the template segs matches p.
func matchSegs(segs []segment, p string) bool {
	for _, s := range segs {
		if p == "" || p[0] != '/' {
			return false
		}
		seg, rest := p[1:], ""
		if i := strings.IndexByte(seg, '/'); i >= 0 {
			seg, rest = seg[:i], seg[i:]
		}
		if s.param && !validParam(seg) || !s.param && seg != s.text {
			return false
		}
		p = rest
	}
	return p == ""
}

// validParam reports whether seg may fill a "{name}" segment: it is not
// empty, not made of dots only (a traversal to any server on the way), and
// holds no "%" (a second decoding would change it), "\", ";" (Tomcat's path
// parameters) or control character.
func validParam(seg string) bool {
	dots := true
	for i := 0; i < len(seg); i++ {
		switch c := seg[i]; {
		case c == '.':
		case c == '%', c == '\\', c == ';', c < 0x20, c == 0x7f:
			return false
		default:
			dots = false
		}
	}
	return seg != "" && !dots
}
