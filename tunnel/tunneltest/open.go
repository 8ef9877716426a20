package tunneltest

import (
	"context"
	"io"
	"testing"
	"time"
)

// Open calls open (a session's OpenStream or AcceptStream, a listener's
// Accept) with a 10 s deadline, fails t if that returns an error, and
// closes what it returned when the test ends.
func Open[C io.Closer](t testing.TB, open func(context.Context) (C, error)) C {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
