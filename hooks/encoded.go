package hooks

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
)

// encodedPublish is a PUBLISH encoded once and written as is to every receiver that needs the
// same bytes (same protocol level and QoS): a room message delivered to a hundred subscribers
// is encoded once instead of a hundred times, the receivers' packet ids aside. The bytes come
// from Mochi's own encoder, so they are what Client.WritePacket would write.
type encodedPublish struct {
	b    []byte // the whole packet; its packet id, if any, is a placeholder
	idAt int    // the offset of the packet id in b, or -1 at QoS 0
}

// encodePublish encodes pk for clients of protocol level version.
func encodePublish(pk packets.Packet, version byte) (*encodedPublish, error) {
	pk.ProtocolVersion = version
	if pk.FixedHeader.Qos > 0 {
		pk.PacketID = 1 // a placeholder: PublishEncode refuses 0
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		return nil, fmt.Errorf("encode publish: %w", err)
	}
	e := &encodedPublish{b: buf.Bytes(), idAt: -1}
	if pk.FixedHeader.Qos > 0 {
		i := 1 // past the first byte of the fixed header, over the remaining length
		for e.b[i]&0x80 != 0 {
			i++
		}
		e.idAt = i + 1 + 2 + len(pk.TopicName) // past the length and the topic
	}
	return e, nil
}

// fits reports whether the packet may go to cl as it is: not over the client's Maximum
// Packet Size. When it is over, Mochi's encoder decides (it may leave out user properties,
// [MQTT-3.1.2-24]).
func (e *encodedPublish) fits(cl *mqtt.Client) bool {
	limit := cl.Properties.Props.MaximumPacketSize
	return limit == 0 || uint32(len(e.b)) <= limit
}

// encodings holds the encodings of one packet by protocol level (before 5 or 5) and QoS,
// made the first time each is needed.
type encodings struct {
	pk  packets.Packet
	enc [2][3]atomic.Pointer[encodedPublish]
}

// get returns the encoding for clients of protocol level version subscribed at qos, or nil
// when the packet cannot be encoded (the caller then falls back to Client.WritePacket, which
// reports the error).
func (es *encodings) get(version, qos byte) *encodedPublish {
	v := 0
	if version >= 5 {
		v = 1
	}
	if int(qos) >= len(es.enc[v]) {
		return nil
	}
	slot := &es.enc[v][qos]
	if e := slot.Load(); e != nil {
		return e
	}
	pk := es.pk
	pk.FixedHeader.Qos = qos
	e, err := encodePublish(pk, version)
	if err != nil {
		return nil
	}
	slot.CompareAndSwap(nil, e) // two first receivers may both encode: either result is right
	return slot.Load()
}

// writeEncoded writes e to cl with packet id id, and the DUP flag when dup, as
// Client.WritePacket writes a packet: under the client's lock, counted in the server's
// statistics.
func writeEncoded(cl *mqtt.Client, info *system.Info, e *encodedPublish, id uint16, dup bool, scratch *[]byte) error {
	if cl.Closed() {
		return mqtt.ErrConnectionClosed
	}
	if cl.Net.Conn == nil {
		return nil
	}
	b := e.b
	if e.idAt >= 0 {
		*scratch = append((*scratch)[:0], e.b...)
		binary.BigEndian.PutUint16((*scratch)[e.idAt:], id)
		if dup {
			(*scratch)[0] |= dupFlag
		}
		b = *scratch
	}
	cl.Lock()
	n, err := cl.Net.Conn.Write(b)
	cl.Unlock()
	if cap(*scratch) > maxScratch {
		*scratch = nil
	}
	if err != nil {
		return fmt.Errorf("write publish: %w", err)
	}
	if info != nil {
		atomic.AddInt64(&info.BytesSent, int64(n))
		atomic.AddInt64(&info.PacketsSent, 1)
		atomic.AddInt64(&info.MessagesSent, 1)
	}
	return nil
}

// dupFlag is the DUP bit of a PUBLISH's first byte.
const dupFlag = 1 << 3

// maxScratch bounds the buffer an outbox keeps between writes of encoded packets.
const maxScratch = 64 << 10
