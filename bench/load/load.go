// Package load is the benchmark's load generator: a pool of lean
// keep-alive HTTP/1.1 connections that send one fixed request as fast as
// the server answers, and bulk download and upload helpers.
//
// The pool writes a prepared request and skims the response (status line,
// the two framing headers, then the body discarded), so that it costs the
// two shared cores a few microseconds per request, like wrk, and leaves
// them to the programs being measured. net/http's client would cost more
// per request than a small proxied call and blur the ratios.
package load

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Request returns the bytes of a GET request for target with the given
// headers, Host and keep-alive included. A "Host" in header is sent in
// place of host.
func Request(host, target string, header map[string]string) []byte {
	if h, ok := header["Host"]; ok {
		host = h
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", target, host)
	keys := make([]string, 0, len(header))
	for k := range header {
		if k != "Host" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\r\n", k, header[k])
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// Pool is a set of connections to one address. Its connections stay open
// between runs, so that a warm-up run leaves them (and whatever the
// server keeps per connection) ready for the measured one.
type Pool struct {
	addr  string
	conns []*conn
}

// NewPool returns a pool of n connections to addr, dialled lazily.
func NewPool(addr string, n int) *Pool {
	p := &Pool{addr: addr}
	for range n {
		p.conns = append(p.conns, &conn{addr: addr})
	}
	return p
}

// Close closes every connection.
func (p *Pool) Close() {
	for _, c := range p.conns {
		c.close()
	}
}

// Run is one bounded run: the first conns connections of the pool each
// send req in a loop until max requests have been sent in all or d has
// passed, whichever comes first.
type Run struct {
	Request []byte
	Conns   int
	Max     int
	For     time.Duration
}

// Result is what a run measured. Latencies are of successful requests.
type Result struct {
	Requests int // answered with status 200
	Errors   int // other statuses and connection failures
	Elapsed  time.Duration
	RPS      float64
	P50, P99 time.Duration
	// FirstError describes the first failure, if any.
	FirstError string
}

// maxErrors stops a run early: a server that fails this often is broken,
// and a benchmark of it means nothing.
const maxErrors = 1000

// Run sends the run's requests and returns what it measured.
func (p *Pool) Run(r Run) (Result, error) {
	if r.Conns < 1 || r.Conns > len(p.conns) {
		return Result{}, fmt.Errorf("run on %d connections of a pool of %d", r.Conns, len(p.conns))
	}
	var (
		issued   atomic.Int64 // requests started, against r.Max
		errs     atomic.Int64
		firstErr sync.Once
		first    string
		wg       sync.WaitGroup
		lat      = make([][]time.Duration, r.Conns)
	)
	start := time.Now()
	deadline := start.Add(r.For)
	for i := range r.Conns {
		c := p.conns[i]
		lat[i] = make([]time.Duration, 0, min(r.Max/r.Conns+1, 1<<20))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for issued.Add(1) <= int64(r.Max) && errs.Load() < maxErrors {
				t0 := time.Now()
				if t0.After(deadline) {
					return
				}
				status, err := c.do(r.Request)
				if err == nil && status != 200 {
					err = fmt.Errorf("status %d", status)
				}
				if err != nil {
					errs.Add(1)
					firstErr.Do(func() { first = err.Error() })
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	res := Result{Elapsed: time.Since(start), Errors: int(errs.Load()), FirstError: first}
	all := slices.Concat(lat...)
	res.Requests = len(all)
	if res.Requests == 0 {
		return res, fmt.Errorf("no request succeeded (%d errors; first: %s)", res.Errors, first)
	}
	if res.Errors >= maxErrors {
		return res, fmt.Errorf("%d errors (first: %s)", res.Errors, first)
	}
	slices.Sort(all)
	res.RPS = float64(res.Requests) / res.Elapsed.Seconds()
	res.P50 = percentile(all, 0.50)
	res.P99 = percentile(all, 0.99)
	return res, nil
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Conn is one keep-alive connection of the load generator, for callers
// that drive requests themselves (testing.B.RunParallel). It is not safe
// for concurrent use.
type Conn struct{ c conn }

// NewConn returns a connection to addr, dialled on first use.
func NewConn(addr string) *Conn { return &Conn{conn{addr: addr}} }

// Do sends req (see Request) and reads the whole response; it returns the
// status.
func (c *Conn) Do(req []byte) (int, error) { return c.c.do(req) }

// Close closes the connection.
func (c *Conn) Close() { c.c.close() }

// conn is one keep-alive connection. Only one goroutine uses it at a time.
type conn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// do sends req and reads the response, body included. The connection is
// redialled after a failure or a "Connection: close".
func (c *conn) do(req []byte) (int, error) {
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		c.c = nc
		if c.r == nil {
			c.r = bufio.NewReaderSize(nc, 64<<10)
		} else {
			c.r.Reset(nc)
		}
	}
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.c.Write(req); err != nil {
		c.close()
		return 0, err
	}
	status, keep, err := readResponse(c.r)
	if err != nil || !keep {
		c.close()
	}
	return status, err
}

var (
	errMalformed = errors.New("malformed HTTP response")
	crlf         = []byte("\r\n")
)

// readResponse reads one response and discards its body. keep reports
// whether the connection may carry another request.
func readResponse(r *bufio.Reader) (status int, keep bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errMalformed
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, errMalformed
	}
	keep = line[7] == '1'
	length, chunked := int64(-1), false
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return status, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, false, errMalformed
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				return status, false, errMalformed
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.Contains(bytes.ToLower(v), []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			if bytes.EqualFold(v, []byte("close")) {
				keep = false
			}
		}
	}
	switch {
	case status == 204 || status == 304 || status/100 == 1:
		return status, keep, nil
	case chunked:
		return status, keep, discardChunked(r)
	case length >= 0:
		_, err := r.Discard(int(length))
		return status, keep, err
	}
	// No framing: the body runs to the end of the connection.
	for {
		if _, err := r.Discard(r.Size()); err != nil {
			return status, false, nil
		}
	}
}

func discardChunked(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimSuffix(line, crlf)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil {
			return errMalformed
		}
		if n == 0 {
			for { // trailers, up to the empty line
				line, err := r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimSpace(line)) == 0 {
					return nil
				}
			}
		}
		if _, err := r.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}
