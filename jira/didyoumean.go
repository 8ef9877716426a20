package jira

import (
	"fmt"
	"slices"
	"strings"
)

// routeHint helps with a "METHOD /template" that names no operation: the
// table's spelling of the same template, or the methods it takes.
func routeHint(tbl *table, method, tmpl string) string {
	segs, err := parseTemplate(tmpl)
	if err != nil {
		return ""
	}
	var methods []string
	for _, op := range tbl.ops {
		if !sameShape(op.segs, segs) {
			continue
		}
		if op.Method == method {
			return fmt.Sprintf(" (did you mean %s %s?)", op.Method, op.Path)
		}
		methods = append(methods, op.Method)
	}
	if len(methods) > 0 {
		slices.Sort(methods)
		return fmt.Sprintf(" (that template takes only %s)", strings.Join(methods, ", "))
	}
	return ""
}

// didYouMean suggests the candidate closest to s, if one is close.
func didYouMean(s string, candidates []string) string {
	best, bestDist := "", len(s)/3+1
	for _, c := range candidates {
		if strings.EqualFold(c, s) {
			return fmt.Sprintf(" (did you mean %s?)", c)
		}
		if d := editDistance(s, c, bestDist); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance of a and b, or limit when it is
// at least limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}
