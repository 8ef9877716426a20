package window

import (
	"testing"
	"time"
)

// TestMinutes: values land in their minute, a bucket is emptied when the
// ring comes round to it again, and Each sees only the minutes of the
// window.
func TestMinutes(t *testing.T) {
	m := New[int](3)
	t0 := time.Unix(600*60, 0)
	*m.At(t0) += 1
	*m.At(t0.Add(30 * time.Second)) += 1 // same minute
	*m.At(t0.Add(time.Minute)) += 5
	got := map[int]int{}
	m.Each(t0.Add(time.Minute), func(age int, v *int) { got[age] = *v })
	if len(got) != 2 || got[0] != 5 || got[1] != 2 {
		t.Errorf("after two minutes: got %v, want map[0:5 1:2]", got)
	}
	// Three minutes later t0's bucket is t0+3m's, emptied first.
	*m.At(t0.Add(3 * time.Minute)) += 7
	got = map[int]int{}
	m.Each(t0.Add(3*time.Minute), func(age int, v *int) { got[age] = *v })
	if len(got) != 2 || got[0] != 7 || got[2] != 5 {
		t.Errorf("after the ring came round: got %v, want map[0:7 2:5]", got)
	}
	// An hour later nothing is left in the window.
	n := 0
	m.Each(t0.Add(time.Hour), func(int, *int) { n++ })
	if n != 0 {
		t.Errorf("an hour later: %d buckets in the window, want 0", n)
	}
}
