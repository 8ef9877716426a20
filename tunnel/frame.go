package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxFrameSize is the largest control frame payload, 1 MiB. A peer that
// announces more is broken or hostile, and the control stream is closed.
const MaxFrameSize = 1 << 20

// Framing errors.
var (
	ErrFrameTooLarge = fmt.Errorf("control frame larger than %d bytes", MaxFrameSize)
	ErrEmptyFrame    = errors.New("empty control frame")
)

// AppendFrame appends payload to dst as one frame: a 4-byte big-endian
// length, then the payload.
func AppendFrame(dst, payload []byte) ([]byte, error) {
	if len(payload) == 0 {
		return dst, ErrEmptyFrame
	}
	if len(payload) > MaxFrameSize {
		return dst, ErrFrameTooLarge
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...), nil
}

// ReadFrame reads one frame from r and returns its payload. The length is
// checked before any payload memory is allocated.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	switch {
	case n == 0:
		return nil, ErrEmptyFrame
	case n > MaxFrameSize:
		return nil, ErrFrameTooLarge
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return payload, nil
}
