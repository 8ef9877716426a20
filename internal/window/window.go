// Package window keeps values by the minute over a sliding window, such
// as the last hour's calls of a site on the agent's status page or of a
// broker on the gateway's.
package window

import "time"

// Minutes holds one value per minute for the last n minutes, in a ring:
// the bucket of a minute is reused, emptied, n minutes later. It is not
// safe for concurrent use; its owner locks.
type Minutes[T any] struct {
	minute []int64 // the minute (unix time / 60) each bucket holds
	vals   []T
}

// New returns a window of n minutes.
func New[T any](n int) *Minutes[T] {
	return &Minutes[T]{minute: make([]int64, n), vals: make([]T, n)}
}

// Len is the window's length in minutes.
func (m *Minutes[T]) Len() int { return len(m.vals) }

// At returns the bucket of t's minute, emptied first if it held an older
// minute.
func (m *Minutes[T]) At(t time.Time) *T {
	min := t.Unix() / 60
	i := int(min % int64(len(m.vals)))
	if m.minute[i] != min {
		var zero T
		m.minute[i], m.vals[i] = min, zero
	}
	return &m.vals[i]
}

// Each calls f with each bucket of the window that ends with t's minute
// and holds its minute, with the minute's age (0: t's own minute).
func (m *Minutes[T]) Each(t time.Time, f func(age int, v *T)) {
	now := t.Unix() / 60
	for age := range len(m.vals) {
		min := now - int64(age)
		i := int(min % int64(len(m.vals)))
		if m.minute[i] == min {
			f(age, &m.vals[i])
		}
	}
}
