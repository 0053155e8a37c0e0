package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// MQTT packet types the raw subscriber handles.
const (
	typePublish    = 3
	typeSuback     = 9
	typeDisconnect = 14
)

// rawSub is a minimal MQTT v5 subscriber: it reads packets itself, skips PUBLISH properties
// without decoding them and acknowledges QoS 1 in batches. It exists because paho.golang
// decodes each user property through a fresh bytes.Buffer, which makes the load generator, not
// the broker, the bottleneck for brokers that send properties with every message (roomq adds
// id, author, timestamp and epoch).
type rawSub struct {
	conn net.Conn
	w    *bufio.Writer
	wmu  sync.Mutex // guards w
	done chan struct{}
}

// maxRawPacket bounds the packets a raw subscriber reads.
const maxRawPacket = 16 << 20

// newRawSub connects, subscribes to filter at qos and starts reading; onPayload gets each
// payload (valid only during the call) on the reading goroutine, onError a failure of the
// connection.
func newRawSub(ctx context.Context, d *dialer, clientID, user, password, filter string, qos byte,
	onPayload func([]byte), onError func(error)) (*rawSub, error) {
	conn, err := rawConnect(ctx, d, clientID, user, password)
	if err != nil {
		return nil, err
	}
	s := &rawSub{conn: conn, w: bufio.NewWriterSize(conn, 4096), done: make(chan struct{})}
	sp := packets.NewControlPacket(packets.SUBSCRIBE)
	sub := sp.Content.(*packets.Subscribe)
	sub.PacketID = 1
	sub.Properties = &packets.Properties{}
	sub.Subscriptions = []packets.SubOptions{{Topic: filter, QoS: qos}}
	_ = conn.SetDeadline(time.Now().Add(dialTimeout))
	if _, err := sp.WriteTo(conn); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	suback := make(chan error, 1)
	go func() {
		defer close(s.done)
		err := s.read(r, onPayload, suback)
		select {
		case suback <- err:
		default:
		}
		if err != nil && onError != nil {
			onError(err)
		}
	}()
	select {
	case err = <-suback:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe %s: %w", filter, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return s, nil
}

// read handles packets until the connection ends; it reports the SUBACK's verdict on suback.
// A connection closed by close returns nil.
func (s *rawSub) read(r *bufio.Reader, onPayload func([]byte), suback chan<- error) error {
	var buf []byte
	for {
		first, err := r.ReadByte()
		if err != nil {
			return s.ended(err)
		}
		n, err := readVBI(r)
		if err != nil {
			return s.ended(err)
		}
		if n > maxRawPacket {
			return fmt.Errorf("packet of %d bytes", n)
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		body := buf[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return s.ended(err)
		}
		switch first >> 4 {
		case typePublish:
			qos := (first >> 1) & 3
			payload, id, err := parsePublish(body, qos)
			if err != nil {
				return err
			}
			onPayload(payload)
			if qos > 0 {
				s.wmu.Lock()
				_, err = s.w.Write([]byte{packets.PUBACK << 4, 2, byte(id >> 8), byte(id)})
				if err == nil && r.Buffered() == 0 { // acknowledge in batches
					err = s.w.Flush()
				}
				s.wmu.Unlock()
				if err != nil {
					return s.ended(err)
				}
			}
		case typeSuback:
			// packet id (2), properties (VBI length + bytes), one reason code per filter
			br := &sliceReader{b: body, i: 2}
			pl, err := readVBI(br)
			if err != nil || br.i+pl >= len(body) {
				return errors.New("bad SUBACK")
			}
			var verdict error
			if code := body[br.i+pl]; code >= 0x80 {
				verdict = fmt.Errorf("refused with 0x%02x", code)
			}
			select {
			case suback <- verdict:
			default:
			}
		case typeDisconnect:
			return errors.New("server sent DISCONNECT")
		}
	}
}

// ended maps the end of the connection to nil when close caused it.
func (s *rawSub) ended(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return fmt.Errorf("read: %w", err)
}

// close sends DISCONNECT, closes the connection and waits for the reading goroutine.
func (s *rawSub) close() {
	s.wmu.Lock()
	_, _ = s.w.Write([]byte{typeDisconnect << 4, 0})
	_ = s.w.Flush()
	s.wmu.Unlock()
	_ = s.conn.Close()
	<-s.done
}

// parsePublish returns the payload and packet id of a v5 PUBLISH body, skipping its
// properties.
func parsePublish(body []byte, qos byte) ([]byte, uint16, error) {
	if len(body) < 2 {
		return nil, 0, errors.New("short PUBLISH")
	}
	i := 2 + int(binary.BigEndian.Uint16(body))
	var id uint16
	if qos > 0 {
		if len(body) < i+2 {
			return nil, 0, errors.New("short PUBLISH")
		}
		id = binary.BigEndian.Uint16(body[i:])
		i += 2
	}
	br := &sliceReader{b: body, i: i}
	pl, err := readVBI(br)
	if err != nil || br.i+pl > len(body) {
		return nil, 0, errors.New("bad PUBLISH properties")
	}
	return body[br.i+pl:], id, nil
}

// sliceReader reads bytes from a slice.
type sliceReader struct {
	b []byte
	i int
}

// ReadByte returns the next byte.
func (r *sliceReader) ReadByte() (byte, error) {
	if r.i >= len(r.b) {
		return 0, io.ErrUnexpectedEOF
	}
	r.i++
	return r.b[r.i-1], nil
}

// readVBI reads an MQTT variable byte integer.
func readVBI(r io.ByteReader) (int, error) {
	n, shift := 0, 0
	for range 4 {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			return n, nil
		}
		shift += 7
	}
	return 0, errors.New("bad variable byte integer")
}
