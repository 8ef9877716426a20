// Package rootcause gives the innermost error of a chain, whose text is
// the short cause ("connection refused") rather than the whole story
// ("dial tcp 10.0.0.1:443: connect: connection refused").
package rootcause

import "errors"

// Of returns the innermost error of err's Unwrap chain: err itself when
// it wraps nothing, nil for nil. An error that wraps several (errors.Join)
// is its own root.
func Of(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}
