package broker_test

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
)

// rawSession is a raw MQTT v5 connection of a persistent session: the test reads every
// packet and sends each PUBACK itself, so that it sees packet ids and DUP flags.
type rawSession struct {
	t    *testing.T
	conn net.Conn
}

// dialRawSession connects clientID as user with clean start off, a session expiry of five
// minutes and a Receive Maximum of 10, and returns the connection and CONNACK's session
// present flag.
func dialRawSession(t *testing.T, b *broker.Broker, clientID, user string) (*rawSession, bool) {
	t.Helper()
	s := &rawSession{t: t, conn: mqtttest.DialConn(t, tcpURL(b))}
	t.Cleanup(func() { _ = s.conn.Close() })
	expiry, receiveMax := uint32(300), uint16(10)
	cp := packets.NewControlPacket(packets.CONNECT)
	c := cp.Content.(*packets.Connect)
	c.ProtocolName, c.ProtocolVersion, c.KeepAlive = "MQTT", 5, 30
	c.ClientID, c.CleanStart = clientID, false
	c.Username, c.UsernameFlag = user, true
	c.Properties = &packets.Properties{SessionExpiryInterval: &expiry, ReceiveMaximum: &receiveMax}
	s.write(cp)
	ack, ok := s.read().Content.(*packets.Connack)
	if !ok || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
	return s, ack.SessionPresent
}

func (s *rawSession) write(cp *packets.ControlPacket) {
	s.t.Helper()
	_ = s.conn.SetWriteDeadline(time.Now().Add(mqtttest.Timeout))
	if _, err := cp.WriteTo(s.conn); err != nil {
		s.t.Fatalf("write %s: %v", cp.PacketType(), err)
	}
}

func (s *rawSession) read() *packets.ControlPacket {
	s.t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(mqtttest.Timeout))
	cp, err := packets.ReadPacket(s.conn)
	if err != nil {
		s.t.Fatalf("read: %v", err)
	}
	return cp
}

// subscribe subscribes to filter at QoS 1 and waits for the SUBACK.
func (s *rawSession) subscribe(filter string) {
	s.t.Helper()
	cp := packets.NewControlPacket(packets.SUBSCRIBE)
	sub := cp.Content.(*packets.Subscribe)
	sub.PacketID = 1
	sub.Properties = &packets.Properties{}
	sub.Subscriptions = []packets.SubOptions{{Topic: filter, QoS: 1}}
	s.write(cp)
	if ack, ok := s.read().Content.(*packets.Suback); !ok || len(ack.Reasons) != 1 || ack.Reasons[0] != 1 {
		s.t.Fatalf("SUBACK %+v", ack)
	}
}

// delivery is a room message as a raw session received it.
type delivery struct {
	id       uint64 // the room message id
	packetID uint16
	dup      bool
}

// next reads the next PUBLISH, which must be a room message.
func (s *rawSession) next() delivery {
	s.t.Helper()
	cp := s.read()
	p, ok := cp.Content.(*packets.Publish)
	if !ok {
		s.t.Fatalf("got %s, want PUBLISH", cp.PacketType())
	}
	var m roomMsg
	if err := json.Unmarshal(p.Payload, &m); err != nil {
		s.t.Fatalf("room message %s: %v", p.Payload, err)
	}
	return delivery{id: m.ID, packetID: p.PacketID, dup: p.Duplicate}
}

// ack acknowledges the PUBLISH with packet id id.
func (s *rawSession) ack(id uint16) {
	s.t.Helper()
	cp := packets.NewControlPacket(packets.PUBACK)
	a := cp.Content.(*packets.Puback)
	a.PacketID = id
	a.Properties = &packets.Properties{}
	s.write(cp)
}

// The QoS 1 room messages a persistent session had not acknowledged when its connection
// ended are sent again on the next connection, with their packet ids and the DUP flag
// [MQTT-4.4.0-1] [MQTT-3.3.1-1], then the room continues where it stopped: no message is
// lost and none acknowledged comes again. Both when the connection was lost first and when
// the new connection takes the session over from a live one.
func TestUnacknowledgedRoomMessagesResent(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		name := "after loss"
		if takeover {
			name = "taken over"
		}
		t.Run(name, func(t *testing.T) {
			b := mqtttest.StartBroker(t, nil)
			pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: tcpURL(b)})
			first, _ := dialRawSession(t, b, "rita-phone", "rita")
			first.subscribe("rooms/general")
			for range 3 {
				pub.Publish("rooms/general", 1, text("m"), nil)
			}
			sent := map[uint64]uint16{} // room id -> packet id on the first connection
			for want := uint64(1); want <= 3; want++ {
				d := first.next()
				if d.id != want || d.dup {
					t.Fatalf("first connection got %+v, want id %d without DUP", d, want)
				}
				sent[d.id] = d.packetID
			}
			first.ack(sent[1])
			if !takeover {
				_ = first.conn.Close()
				mqtttest.WaitFor(t, mqtttest.Timeout, "rita offline", func() bool {
					_, ok := b.Subscriptions("rita-phone")
					return !ok
				})
			}
			for range 2 {
				pub.Publish("rooms/general", 1, text("m"), nil)
			}
			if takeover { // the live connection gets them too, and leaves them unacknowledged
				for want := uint64(4); want <= 5; want++ {
					d := first.next()
					if d.id != want || d.dup {
						t.Fatalf("first connection got %+v, want id %d without DUP", d, want)
					}
					sent[d.id] = d.packetID
				}
			}
			second, present := dialRawSession(t, b, "rita-phone", "rita")
			if !present {
				t.Fatal("session not resumed")
			}
			pub.Publish("rooms/general", 1, text("m"), nil)
			for want := uint64(2); want <= 6; want++ {
				d := second.next()
				if d.id != want {
					t.Fatalf("second connection got id %d, want %d (lost or doubled)", d.id, want)
				}
				if pid, ok := sent[d.id]; ok && (!d.dup || d.packetID != pid) {
					t.Fatalf("id %d came again as %+v, want DUP and packet id %d", d.id, d, pid)
				} else if !ok && d.dup {
					t.Fatalf("id %d first sent with DUP", d.id)
				}
				second.ack(d.packetID)
			}
		})
	}
}
