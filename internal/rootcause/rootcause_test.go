package rootcause

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
)

func TestOf(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("connect: %w", syscall.ECONNREFUSED)}
	joined := errors.Join(errors.New("a"), errors.New("b"))
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"nil", nil, nil},
		{"plain", syscall.ECONNREFUSED, syscall.ECONNREFUSED},
		{"wrapped", fmt.Errorf("request to Jira: %w", refused), syscall.ECONNREFUSED},
		{"joined", fmt.Errorf("x: %w", joined), joined},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
