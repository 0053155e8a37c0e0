package main

import (
	"encoding/binary"
	"errors"
	"time"
)

// headerSize is the size of the header every benchmark payload starts with:
// magic (2 bytes), publisher index (4), sequence number (8), send time in Unix ns (8).
const headerSize = 22

// payloadMagic marks benchmark payloads.
const payloadMagic = 0xB7C4

// errNotBench is returned for payloads this tool did not write.
var errNotBench = errors.New("not a benchmark payload")

// header is what a receiver learns from a payload.
type header struct {
	pub  uint32
	seq  uint64
	sent time.Time
}

// newPayload returns a payload buffer of size bytes (at least headerSize), filled with
// printable padding.
func newPayload(size int) []byte {
	buf := make([]byte, max(size, headerSize))
	for i := headerSize; i < len(buf); i++ {
		buf[i] = 'a' + byte(i%26)
	}
	return buf
}

// stamp writes the header into buf, which newPayload made.
func stamp(buf []byte, pub uint32, seq uint64, now time.Time) {
	binary.BigEndian.PutUint16(buf[0:], payloadMagic)
	binary.BigEndian.PutUint32(buf[2:], pub)
	binary.BigEndian.PutUint64(buf[6:], seq)
	binary.BigEndian.PutUint64(buf[14:], uint64(now.UnixNano()))
}

// parseHeader reads the header of a payload.
func parseHeader(p []byte) (header, error) {
	if len(p) < headerSize || binary.BigEndian.Uint16(p) != payloadMagic {
		return header{}, errNotBench
	}
	return header{
		pub:  binary.BigEndian.Uint32(p[2:]),
		seq:  binary.BigEndian.Uint64(p[6:]),
		sent: time.Unix(0, int64(binary.BigEndian.Uint64(p[14:]))),
	}, nil
}

// seqSet records which sequence numbers of one publisher arrived, to count losses and
// duplicates.
type seqSet struct {
	bits  []uint64
	count uint64
}

// add records seq and reports whether it was already there.
func (s *seqSet) add(seq uint64) (dup bool) {
	w := seq / 64
	for uint64(len(s.bits)) <= w {
		s.bits = append(s.bits, make([]uint64, len(s.bits)+1)...)
	}
	m := uint64(1) << (seq % 64)
	if s.bits[w]&m != 0 {
		return true
	}
	s.bits[w] |= m
	s.count++
	return false
}
