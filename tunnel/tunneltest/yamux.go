package tunneltest

import "encoding/binary"

// MuxHeader is a yamux frame header (hashicorp/yamux spec.md) written by
// hand, for tests that play a rogue peer and must not go through the
// tunnel package's framing: version 0, then typ, flags, stream id and
// length, big-endian, 12 bytes in all.
func MuxHeader(typ byte, flags uint16, id, length uint32) []byte {
	h := make([]byte, 12)
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:], flags)
	binary.BigEndian.PutUint32(h[4:], id)
	binary.BigEndian.PutUint32(h[8:], length)
	return h
}

// Flood is n frames made by frame, back to back, to be written at once.
func Flood(n int, frame func(i int) []byte) []byte {
	var b []byte
	for i := range n {
		b = append(b, frame(i)...)
	}
	return b
}
