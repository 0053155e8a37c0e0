package broker_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/roomq/roomq/internal/mqtttest"
)

// A client that loses its connection and connects again at once with the same client id
// (before the broker noticed the loss) keeps its new membership: the old connection's
// late clean-up does not end it.
func TestQuickReconnectKeepsMembership(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})
	admin.MustSubscribe("rooms/general")
	for i := range 20 {
		old := mqtttest.Dial(t, "kim", mqtttest.Options{URL: tcpURL(b), ClientID: "kim-1"})
		old.MustSubscribe("rooms/general")
		// The new connection takes over before the old one is closed by the client.
		c := mqtttest.Dial(t, "kim", mqtttest.Options{URL: tcpURL(b), ClientID: "kim-1"})
		c.MustSubscribe("rooms/general")
		var users []string
		admin.MustRPC("roomGetAccessList", map[string]any{"room": "general", "list": "userlist"}, &users)
		found := false
		for _, u := range users {
			found = found || u == "kim"
		}
		if !found {
			t.Fatalf("round %d: kim not in the room after a takeover: %v", i, users)
		}
		admin.Publish("rooms/general", 1, text(fmt.Sprintf("r%d", i)), nil)
		if m := decodeRoomMsg(t, c.Expect("rooms/general")); m.TextMessage != fmt.Sprintf("r%d", i) {
			t.Fatalf("round %d: got %q", i, m.TextMessage)
		}
		c.Close()
	}
}

// A clean start that takes over a connection ends the old connection's memberships: the user
// leaves the room it does not join again.
func TestCleanTakeoverLeavesRooms(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})
	admin.MustSubscribe("rooms/general/events")
	old := mqtttest.Dial(t, "kim", mqtttest.Options{URL: tcpURL(b), ClientID: "kim-1"})
	old.MustSubscribe("rooms/general")
	admin.ExpectEvent("rooms/general/events", "userJoined")
	mqtttest.Dial(t, "kim", mqtttest.Options{URL: tcpURL(b), ClientID: "kim-1"}).MustSubscribe("users/kim/events")
	if ev := admin.ExpectEvent("rooms/general/events", "userLeft"); ev["user"] != "kim" {
		t.Fatalf("userLeft = %v", ev)
	}
	var users []string
	admin.MustRPC("roomGetAccessList", map[string]any{"room": "general", "list": "userlist"}, &users)
	for _, u := range users {
		if u == "kim" {
			t.Fatalf("kim still in the room after a clean takeover: %v", users)
		}
	}
}

// A client whose connection is lost (socket closed, no DISCONNECT) and that connects again at
// once with the same client id gets what is published to its new subscriptions: the broker
// does not lose the new connection while it cleans up after the old one.
func TestQuickReconnectAfterLoss(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})
	const topic = "cmd/kim"
	subscribe := append([]byte{0x82, byte(2 + 2 + len(topic) + 1), 0, 1, 0, byte(len(topic))}, topic...)
	subscribe = append(subscribe, 1) // SUBSCRIBE cmd/kim QoS 1, packet id 1
	for i := range 30 {
		raw := mqtttest.DialConn(t, tcpURL(b))
		buf := make([]byte, 5)
		if _, err := raw.Write(connectPacket("kim-1", "kim", 30, "devices/kim/status", "gone")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(raw, buf[:4]); err != nil { // CONNACK
			t.Fatal(err)
		}
		if _, err := raw.Write(subscribe); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(raw, buf[:5]); err != nil { // SUBACK
			t.Fatal(err)
		}
		_ = raw.Close() // lost: no DISCONNECT
		c := mqtttest.Dial(t, "kim", mqtttest.Options{URL: tcpURL(b), ClientID: "kim-1"})
		c.MustSubscribe(topic)
		want := fmt.Sprintf("r%d", i)
		admin.Publish(topic, 1, []byte(want), nil)
		for string(c.Expect(topic).Payload) != want {
		}
		c.Close()
	}
}
