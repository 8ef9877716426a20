package tunnel

import (
	"context"
	"io"
	"testing"
)

// BenchmarkStreamOpenAccept measures one request stream's life on each
// transport, as the gateway and agent use them: the gateway opens a
// stream and writes a byte, the agent accepts it, answers a byte and
// closes; the gateway reads the answer and closes. (The gateway pools
// streams for HTTP keep-alive, so this is the cost of a pool miss.)
func BenchmarkStreamOpenAccept(b *testing.B) {
	for _, transport := range transports {
		b.Run(transport, func(b *testing.B) {
			agent, gw := pair(b, transport, Options{})
			served := make(chan struct{})
			go func() { // the agent: accept, answer, close
				defer close(served)
				for {
					st, err := agent.AcceptStream(context.Background())
					if err != nil {
						return
					}
					var one [1]byte
					if _, err := io.ReadFull(st, one[:]); err == nil {
						st.Write(one[:])
					}
					st.Close()
				}
			}()
			ctx := context.Background()
			var one [1]byte
			b.ReportAllocs()
			for b.Loop() {
				st, err := gw.OpenStream(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := st.Write(one[:]); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(st, one[:]); err != nil {
					b.Fatal(err)
				}
				st.Close()
			}
			b.StopTimer()
			agent.Close()
			gw.Close()
			<-served
		})
	}
}

// BenchmarkStreamCopy measures bulk transfer on one stream, gateway to
// agent (an attachment upload's direction), 1 MiB per op: the flow
// control windows of Options bound it.
func BenchmarkStreamCopy(b *testing.B) {
	const chunk = 1 << 20
	for _, transport := range transports {
		b.Run(transport, func(b *testing.B) {
			agent, gw := pair(b, transport, Options{})
			read := make(chan int64, 1)
			go func() {
				st, err := agent.AcceptStream(context.Background())
				if err != nil {
					read <- 0
					return
				}
				n, _ := io.Copy(io.Discard, st)
				st.Close()
				read <- n
			}()
			st, err := gw.OpenStream(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ReportAllocs()
			n := int64(0)
			for b.Loop() {
				if _, err := st.Write(buf); err != nil {
					b.Fatal(err)
				}
				n += chunk
			}
			CloseWrite(st)
			if got := <-read; got != n {
				b.Errorf("the agent read %d bytes, want %d", got, n)
			}
			b.StopTimer()
			st.Close()
		})
	}
}
