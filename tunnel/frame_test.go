package tunnel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFrameRoundTrip(t *testing.T) {
	msgs := []Message{
		Hello{Protocol: 1, BrokerID: "acme", Token: "t", AgentID: "a", Sites: []SiteInfo{{Name: "jira", URL: "https://x"}}},
		Welcome{SessionID: "s", GatewayVersion: "v"},
		Reject{Code: RejectUnauthorized, Message: "no"},
		GoAway{Reason: "shutdown"},
		Sites{Sites: []SiteInfo{{Name: "a"}, {Name: "b"}}},
		Sites{},
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		b, err := EncodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		f, err := AppendFrame(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(f)
	}
	for _, want := range msgs {
		p, err := ReadFrame(&buf)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMessage(p)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v, want %#v", got, want)
		}
	}
	if _, err := ReadFrame(&buf); err != io.EOF {
		t.Fatalf("after the last frame: got %v, want EOF", err)
	}
}

func TestEncodeMessageTypeFirst(t *testing.T) {
	b, _ := EncodeMessage(GoAway{Reason: "drain"})
	if got, want := string(b), `{"type":"goaway","reason":"drain"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestReadFrameRefusesBadLengths(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", binary.BigEndian.AppendUint32(nil, MaxFrameSize+1), ErrFrameTooLarge},
		{"10 MiB hello", binary.BigEndian.AppendUint32(nil, 10<<20), ErrFrameTooLarge},
		{"empty", binary.BigEndian.AppendUint32(nil, 0), ErrEmptyFrame},
		{"truncated payload", append(binary.BigEndian.AppendUint32(nil, 10), "abc"...), io.ErrUnexpectedEOF},
		{"truncated header", []byte{0, 0}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := AppendFrame(nil, make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("AppendFrame of an oversize payload: got %v, want ErrFrameTooLarge", err)
	}
}

func TestDecodeMessageRefusesGarbage(t *testing.T) {
	for _, in := range []string{`not json`, `{}`, `{"type":""}`, `[]`, `{"type":"hello","protocol":"x"}`} {
		if m, err := DecodeMessage([]byte(in)); err == nil {
			t.Errorf("DecodeMessage(%s) = %#v, want an error", in, m)
		}
	}
	_, err := DecodeMessage([]byte(`{"type":"future-thing"}`))
	if !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("unknown type: got %v, want ErrUnknownMessage", err)
	}
}

// TestRecvTellsProtocolErrorsFromTheEnd: Control.Recv reports a bad frame
// as ErrProtocol (the session is then closed), the end of the stream as
// io.EOF (the drain acknowledgement), and an unknown type as
// ErrUnknownMessage (ignored): the three must not be mistaken.
func TestRecvTellsProtocolErrorsFromTheEnd(t *testing.T) {
	frame := func(payload string) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
		return append(b, payload...)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"zero length", []byte{0, 0, 0, 0}, ErrProtocol},
		{"over 1 MiB", []byte{0, 0x10, 0, 1}, ErrProtocol},
		{"garbage JSON", frame(`{"type":`), ErrProtocol},
		{"not an object", frame(`[1,2]`), ErrProtocol},
		{"goaway with a number for reason", frame(`{"type":"goaway","reason":5}`), ErrProtocol},
		{"sites that are not a list", frame(`{"type":"sites","sites":"jira"}`), ErrProtocol},
		{"cut short by the end", frame(`{"type":"goaway"}`)[:10], ErrProtocol},
		{"the end", nil, io.EOF},
		{"an unknown type", frame(`{"type":"future"}`), ErrUnknownMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewControl(&bufConn{Reader: bytes.NewReader(tt.in)})
			_, err := c.Recv(time.Time{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.want != ErrProtocol && errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, which is also a protocol error", err)
			}
		})
	}
}

// bufConn is a net.Conn that reads from a Reader; deadlines do nothing.
type bufConn struct {
	net.Conn
	io.Reader
}

func (c *bufConn) Read(b []byte) (int, error)      { return c.Reader.Read(b) }
func (c *bufConn) SetReadDeadline(time.Time) error { return nil }

func TestHelloNeverPrintsToken(t *testing.T) {
	h := Hello{BrokerID: "acme", Token: "tok-very-secret"}
	for _, s := range []string{h.String(), h.LogValue().String()} {
		if strings.Contains(s, "tok-very-secret") {
			t.Fatalf("hello printed its token: %s", s)
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	ok, _ := AppendFrame(nil, []byte(`{"type":"hello","broker_id":"a"}`))
	f.Add(ok)
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ReadFrame(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(p) == 0 || len(p) > MaxFrameSize {
			t.Fatalf("ReadFrame returned %d bytes", len(p))
		}
		m, err := DecodeMessage(p)
		if err != nil {
			return
		}
		checkRoundTrip(t, m)
	})
}

// checkRoundTrip checks that a decoded message re-encodes and decodes to
// the same value.
func checkRoundTrip(t *testing.T, m Message) {
	t.Helper()
	b, err := EncodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := DecodeMessage(b)
	if err != nil {
		t.Fatalf("re-decode %s: %v", b, err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("round trip changed %#v into %#v", m, m2)
	}
}
