package hooks

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestEncodedPublishMatchesMochi checks that a shared encoding, with a receiver's packet id
// put in, is byte for byte what Mochi's encoder writes for that receiver.
func TestEncodedPublishMatchesMochi(t *testing.T) {
	props := []packets.UserProperty{{Key: "id", Val: "42"}, {Key: "author", Val: "alice"}}
	for _, size := range []int{0, 10, 200, 20000} {
		for _, version := range []byte{4, 5} {
			for _, qos := range []byte{0, 1, 2} {
				t.Run(fmt.Sprintf("size=%d/v%d/qos%d", size, version, qos), func(t *testing.T) {
					es := &encodings{pk: packets.Packet{
						FixedHeader: packets.FixedHeader{Type: packets.Publish},
						TopicName:   "rooms/" + strings.Repeat("r", size%50+1),
						Payload:     bytes.Repeat([]byte{'x'}, size),
						Properties:  packets.Properties{User: props},
					}}
					e := es.get(version, qos)
					if e == nil {
						t.Fatal("no encoding")
					}
					if again := es.get(version, qos); again != e {
						t.Error("the encoding was made twice")
					}
					got := bytes.Clone(e.b)
					if qos > 0 {
						binary.BigEndian.PutUint16(got[e.idAt:], 0xA1B2)
					}
					want := es.pk
					want.FixedHeader.Qos = qos
					want.ProtocolVersion = version
					if qos > 0 {
						want.PacketID = 0xA1B2
					}
					var buf bytes.Buffer
					if err := want.PublishEncode(&buf); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, buf.Bytes()) {
						t.Fatalf("shared encoding\n%x\nMochi's\n%x", got, buf.Bytes())
					}
				})
			}
		}
	}
}

// TestEncodedPublishFits checks that a packet over a client's Maximum Packet Size is left to
// Mochi's encoder.
func TestEncodedPublishFits(t *testing.T) {
	e, err := encodePublish(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName: "rooms/a", Payload: make([]byte, 100)}, 5)
	if err != nil {
		t.Fatal(err)
	}
	cl := &mqtt.Client{}
	if !e.fits(cl) {
		t.Error("does not fit a client without a limit")
	}
	cl.Properties.Props.MaximumPacketSize = uint32(len(e.b))
	if !e.fits(cl) {
		t.Error("does not fit a client whose limit is its size")
	}
	cl.Properties.Props.MaximumPacketSize = uint32(len(e.b) - 1)
	if e.fits(cl) {
		t.Error("fits a client whose limit is one byte less")
	}
}
