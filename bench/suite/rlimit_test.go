package suite

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestFitSessions(t *testing.T) {
	for _, tc := range []struct {
		want  int
		hard  uint64
		n     int
		noted bool
	}{
		{10000, 20000, 10000, false},
		{10000, 11024, 10000, false},
		{10000, math.MaxUint64, 10000, false}, // RLIM_INFINITY
		{10000, 8192, 7168, true},
		{10000, 11023, 9999, true},
	} {
		n, why, err := fitSessions(tc.want, tc.hard)
		if err != nil || n != tc.n || (why != "") != tc.noted {
			t.Errorf("fitSessions(%d, %d): got %d, %q, %v; want %d, noted %v", tc.want, tc.hard, n, why, err, tc.n, tc.noted)
		}
		if tc.noted && !strings.Contains(why, "ulimit -Hn") {
			t.Errorf("fitSessions(%d, %d): %q does not say which limit", tc.want, tc.hard, why)
		}
	}
	if _, _, err := fitSessions(10000, 1024); !errors.Is(err, errFileLimit) {
		t.Errorf("hard limit 1024: got %v, want errFileLimit", err)
	}
}
