package cli

import (
	"io"
	"os"
	"sync"
	"time"
)

// Log output is buffered: a proxied request writes a log line on each
// side, and one write system call per line was a measurable part of a
// small request's cost (docs/benchmarks.md). Lines wait at most
// logFlushEvery; a process killed with SIGKILL loses that much.
const (
	logBufferSize = 64 << 10
	logFlushEvery = 100 * time.Millisecond
)

// LogBuffer batches log lines written to a file and writes them every
// logFlushEvery, when 64 KiB are waiting, and on Close.
type LogBuffer struct {
	mu     sync.Mutex // guards buf and closed, and serialises writes to w
	w      io.Writer
	buf    []byte
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// NewLogBuffer buffers w when it is a file (stderr, a log file). Other
// writers, such as the Windows event log, which takes one record per
// write, and test buffers, are returned as they are, with a no-op Close.
func NewLogBuffer(w io.Writer) io.WriteCloser {
	if _, ok := w.(*os.File); !ok {
		return nopCloser{w}
	}
	b := &LogBuffer{w: w, buf: make([]byte, 0, logBufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushLoop()
	return b
}

// Write queues p, one log record, whole.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > logBufferSize {
		b.flushLocked()
	}
	if b.closed || len(p) > logBufferSize {
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *LogBuffer) flushLocked() {
	if len(b.buf) > 0 {
		b.w.Write(b.buf) // a log line that cannot be written has nowhere to go
		b.buf = b.buf[:0]
	}
}

func (b *LogBuffer) flushLoop() {
	defer close(b.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.mu.Lock()
			b.flushLocked()
			b.mu.Unlock()
		case <-b.stop:
			return
		}
	}
}

// Close writes what is waiting and stops the flusher. Writes after Close
// go straight to the file.
func (b *LogBuffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.flushLocked()
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
