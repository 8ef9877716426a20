package procstat

import (
	"os"
	"testing"
)

func TestSelf(t *testing.T) {
	pid := os.Getpid()
	burn := 0
	for i := range 50_000_000 {
		burn += i
	}
	_ = burn
	cpu, err := CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	if cpu <= 0 {
		t.Errorf("CPU: got %v, want > 0", cpu)
	}
	m, err := Mem(pid)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Peak < m.RSS {
		t.Errorf("Mem: got %+v, want 0 < RSS <= Peak", m)
	}
	if _, err := os.ReadFile("/proc/self/stat"); err != nil {
		t.Fatal(err)
	}
	io, err := IO(pid)
	if err != nil {
		t.Fatal(err)
	}
	if io.Reads <= 0 {
		t.Errorf("IO: got %+v, want some reads", io)
	}
}
