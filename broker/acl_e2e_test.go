package broker_test

import (
	"io"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/internal/mqtttest"
)

// Users are confined to their own users/ topics, cannot subscribe to wildcards over rooms,
// other users or RPC, and cannot publish to broker-only topics; admins may subscribe to all.
func TestConfinement(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})

	subs := []struct {
		filter       string
		alice, admin byte
	}{
		{"rooms/general", 0x01, 0x01},
		{"rooms/general/events", 0x01, 0x01},
		{"rooms/nosuchroom", 0x87, 0x87},
		{"rooms/+", 0x87, 0x01},
		{"rooms/#", 0x87, 0x01},
		{"#", 0x87, 0x01},
		{"+/general", 0x87, 0x01},
		{"users/alice/#", 0x01, 0x01},
		{"users/bob/inbox", 0x87, 0x01},
		{"users/+/inbox", 0x87, 0x01},
		{"users/#", 0x87, 0x01},
		{"$rpc/#", 0x87, 0x01},
		{"$rpc/roomCreate", 0x87, 0x01},
		{"presence/+", 0x01, 0x01},
		{"devices/+/status", 0x01, 0x01},
		{"$share/g/users/bob/inbox", 0x87, 0x01},
		{"$SHARE/g/users/+/events", 0x87, 0x01},
		{"$share/g/rooms/general", 0x87, 0x87},
		{"$share/g/devices/+/status", 0x01, 0x01},
	}
	for _, s := range subs {
		for who, c := range map[string]*mqtttest.Client{"alice": alice, "admin": admin} {
			want := s.alice
			if who == "admin" {
				want = s.admin
			}
			if got := c.Subscribe(nil, paho.SubscribeOptions{Topic: s.filter, QoS: 1})[0]; got != want {
				t.Errorf("%s subscribes %s: 0x%02x, want 0x%02x", who, s.filter, got, want)
			}
		}
	}

	pubs := []struct {
		topic string
		want  byte
	}{
		{"users/alice/notes", 0x00},
		{"users/bob/notes", 0x87},
		{"users/alice/events", 0x87},
		{"users/bob/events", 0x87},
		{"users/alice/replies/x", 0x87},
		{"presence/alice", 0x87},
		{"rooms/general/events", 0x87},
		{"rooms/a/b", 0x87},
		{"devices/1/status", 0x00},
	}
	for _, p := range pubs {
		for _, qos := range []byte{1, 2} {
			if got := alice.Publish(p.topic, qos, []byte(`{"x":1}`), nil); got != p.want {
				t.Errorf("alice publishes %s at QoS %d: 0x%02x, want 0x%02x", p.topic, qos, got, p.want)
			}
		}
	}
}

// A refused publish is never delivered, also at QoS 0 and for v3.1.1 clients, which have no
// reason codes: the broker drops it and keeps the connection.
func TestRefusedPublishNeverDelivered(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(b)})
	bob.MustSubscribe("users/bob/events", "presence/bob")
	v3, err := mqtttest.DialV3(t, tcpURL(b), "mallory", "")
	if err != nil {
		t.Fatal(err)
	}
	if code := v3.Subscribe("users/bob/#"); code != 0x80 {
		t.Errorf("v3 SUBACK for another user's topics: 0x%02x, want 0x80", code)
	}
	v3.Publish("users/bob/events", 1, []byte(`{"event":"forged"}`))
	v3.Publish("users/bob/events", 0, []byte(`{"event":"forged"}`))
	v3.Publish("presence/bob", 1, []byte(`{"online":false}`))
	// The v3 connection is still usable, and bob saw nothing forged: a broker message sent
	// afterwards arrives first.
	bob.MustRPC("systemMessage", map[string]any{"data": "real"}, nil)
	second := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(b)})
	second.MustRPC("systemMessage", map[string]any{"data": "real"}, nil)
	ev := bob.ExpectEvent("users/bob/events", "systemMessage")
	if ev["data"] != "real" {
		t.Fatalf("bob got %v", ev)
	}
	if code := v3.Subscribe("rooms/general"); code != 1 {
		t.Errorf("v3 connection unusable after refusals: SUBACK 0x%02x", code)
	}
}

// A will on a broker-only topic or another user's topics is refused at CONNECT.
func TestWillTopicRefused(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	for _, topic := range []string{"presence/eve", "users/bob/events", "users/bob/notes", "$rpc/roomDelete", "rooms/general/events"} {
		c := mqtttest.Dial(t, "eve", mqtttest.Options{URL: tcpURL(b), NoFail: true, Connect: func(cp *paho.Connect) {
			cp.WillMessage = &paho.WillMessage{Topic: topic, Payload: []byte("x")}
		}})
		if c.Connack == nil || c.Connack.ReasonCode != 0x87 {
			t.Errorf("will on %s: CONNACK %+v, want 0x87", topic, c.Connack)
		}
	}
	if _, err := mqtttest.DialV3(t, tcpURL(b), "eve", "presence/eve"); err == nil {
		t.Error("v3 will on presence/eve accepted")
	}
}

// An empty or invalid user name is refused with 0x86; the broker never closes silently.
func TestBadCredentials(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	for _, user := range []string{"", "a/b", "$sys"} {
		c := mqtttest.Dial(t, user, mqtttest.Options{URL: tcpURL(b), NoFail: true, ClientID: "x"})
		if c.Connack == nil || c.Connack.ReasonCode != 0x86 {
			t.Errorf("user %q: CONNACK %+v, want 0x86", user, c.Connack)
		}
	}
}

// Malformed packets end only the offending connection; other clients carry on.
func TestMalformedInput(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	good := mqtttest.Dial(t, "good", mqtttest.Options{URL: tcpURL(b)})
	good.MustSubscribe("rooms/general")

	garbage := [][]byte{
		{0xFF, 0xFF, 0xFF, 0xFF, 0xFF},                                        // bad type and length
		{0x30, 0x02, 0x00},                                                    // PUBLISH before CONNECT, truncated
		{0x10, 0x04, 0x00, 0x04, 'M', 'Q'},                                    // truncated CONNECT
		{0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},                                  // oversized remaining length
		append([]byte{0x10, 0x0C}, "\x00\x04MQTT\x09\x02\x00\x3c\x00\x00"...), // bad protocol version
	}
	for _, g := range garbage {
		raw := mqtttest.DialConn(t, tcpURL(b))
		_, _ = raw.Write(g)
		buf := make([]byte, 16)
		_, _ = raw.Read(buf) // an error CONNACK or EOF: either way the broker ends it
		_ = raw.Close()
	}
	// A connected client that sends a malformed PUBLISH (a wildcard in the topic name) is
	// disconnected; others are not.
	raw := mqtttest.DialConn(t, tcpURL(b))
	defer raw.Close()
	if _, err := raw.Write(connectPacket("bad-1", "bad", 30, "devices/bad/status", "x")); err != nil {
		t.Fatal(err)
	}
	connack := make([]byte, 4)
	if _, err := io.ReadFull(raw, connack); err != nil || connack[0] != 0x20 || connack[3] != 0 {
		t.Fatalf("CONNACK %x, %v", connack, err)
	}
	_, _ = raw.Write([]byte{0x30, 0x09, 0x00, 0x07, 'r', 'o', 'o', 'm', 's', '/', '#'})
	_ = raw.SetReadDeadline(time.Now().Add(mqtttest.Timeout))
	if _, err := io.ReadAll(raw); err != nil {
		t.Fatalf("malformed PUBLISH: connection not closed: %v", err)
	}
	if code := good.Publish("rooms/general", 1, text("still here"), nil); code != 0 {
		t.Fatalf("good client: 0x%02x", code)
	}
	if m := decodeRoomMsg(t, good.Expect("rooms/general")); m.TextMessage != "still here" || m.ID != 1 {
		t.Fatalf("good client got %+v", m)
	}
}

// Room messages keep their id, author, timestamp and epoch user properties for a client that
// asked for no problem information (MQTT-3.1.2-29 does not cover PUBLISH).
func TestUserPropertiesWithoutProblemInfo(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	c := mqtttest.Dial(t, "quiet", mqtttest.Options{URL: tcpURL(b), Connect: func(cp *paho.Connect) {
		cp.Properties.RequestProblemInfo = false
	}})
	c.MustSubscribe("rooms/general")
	c.Publish("rooms/general", 1, text("hi"), nil)
	p := c.Expect("rooms/general")
	if mqtttest.UserProperty(p, "id") != "1" || mqtttest.UserProperty(p, "author") != "quiet" {
		t.Fatalf("user properties = %+v", p.Properties)
	}
}
