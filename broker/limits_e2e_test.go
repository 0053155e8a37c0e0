package broker_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/wire"
)

// A room message over the room's size limit is refused with 0x95 (RPC: badMessage), and the
// room goes on.
func TestRoomMessageSizeLimit(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.MaxRoomMessageSize = 100 })
	c := mqtttest.Dial(t, "sid", mqtttest.Options{URL: tcpURL(b)})
	c.MustSubscribe("rooms/general")
	big := text(string(bytes.Repeat([]byte("x"), 200)))
	if code := c.Publish("rooms/general", 1, big, nil); code != 0x95 {
		t.Errorf("oversize message: 0x%02x, want 0x95", code)
	}
	if code := c.RPCErrorCode("roomMessage", map[string]any{"room": "general", "message": map[string]string{"textMessage": string(bytes.Repeat([]byte("x"), 200))}}); code != wire.CodeBadMessage {
		t.Errorf("oversize roomMessage: %s, want badMessage", code)
	}
	if code := c.Publish("rooms/general", 1, text("small"), nil); code != 0 {
		t.Errorf("small message: 0x%02x", code)
	}
	if m := decodeRoomMsg(t, c.Expect("rooms/general")); m.ID != 1 {
		t.Errorf("got id %d, want 1: refused messages take no id", m.ID)
	}
}

// Users may own a limited number of rooms; global admins are not limited.
func TestRoomsPerUserLimit(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.MaxRoomsPerUser = 2 })
	c := mqtttest.Dial(t, "rae", mqtttest.Options{URL: tcpURL(b)})
	c.MustRPC("roomCreate", map[string]any{"room": "r1"}, nil)
	c.MustRPC("roomCreate", map[string]any{"room": "r2"}, nil)
	if code := c.RPCErrorCode("roomCreate", map[string]any{"room": "r3"}); code != wire.CodeNotAllowed {
		t.Errorf("third room: %s, want notAllowed", code)
	}
	c.MustRPC("roomDelete", map[string]any{"room": "r1"}, nil)
	c.MustRPC("roomCreate", map[string]any{"room": "r3"}, nil)
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})
	for _, r := range []string{"a1", "a2", "a3"} {
		admin.MustRPC("roomCreate", map[string]any{"room": r}, nil)
	}
}

// With deny-by-default topic rules, a device may use only devices/{its client id}/#; the
// reserved namespaces keep their own rules and admins are not bound by topic rules.
func TestTopicRules(t *testing.T) {
	rules, err := acl.NewRules([]acl.Rule{{Allow: true, Access: acl.AccessBoth, Pattern: "devices/%c/#"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.TopicRules = rules })
	dev := mqtttest.Dial(t, "dev", mqtttest.Options{URL: tcpURL(b), ClientID: "d1"})
	subs := map[string]byte{
		"devices/d1/#":       0x01,
		"devices/d1/cmd":     0x01,
		"devices/d2/cmd":     0x87,
		"devices/+/cmd":      0x87,
		"sensors/x":          0x87,
		"users/dev/#":        0x01,
		"presence/+":         0x01,
		"rooms/general":      0x01,
		"$share/g/devices/#": 0x87,
	}
	for filter, want := range subs {
		if got := dev.Subscribe(nil, paho.SubscribeOptions{Topic: filter, QoS: 1})[0]; got != want {
			t.Errorf("subscribe %s: 0x%02x, want 0x%02x", filter, got, want)
		}
	}
	pubs := map[string]byte{
		"devices/d1/state": 0x00,
		"devices/d2/state": 0x87,
		"sensors/x":        0x87,
		"users/dev/notes":  0x00,
	}
	for topic, want := range pubs {
		if got := dev.Publish(topic, 1, []byte(`{"ok":true}`), nil); got != want {
			t.Errorf("publish %s: 0x%02x, want 0x%02x", topic, got, want)
		}
	}
	if code := dev.Publish("rooms/general", 1, text("rooms still work"), nil); code != 0 {
		t.Errorf("room message: 0x%02x", code)
	}
	// A will outside the allowed topics is refused at CONNECT.
	c := mqtttest.Dial(t, "dev", mqtttest.Options{URL: tcpURL(b), ClientID: "d3", NoFail: true, Connect: func(cp *paho.Connect) {
		cp.WillMessage = &paho.WillMessage{Topic: "devices/d1/status", Payload: []byte("x")}
	}})
	if c.Connack == nil || c.Connack.ReasonCode != 0x87 {
		t.Errorf("will on another device's topic: %+v, want 0x87", c.Connack)
	}
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})
	if got := admin.Subscribe(nil, paho.SubscribeOptions{Topic: "#", QoS: 1})[0]; got != 0x01 {
		t.Errorf("admin subscribe #: 0x%02x", got)
	}
}

// Over its publish rate a connection gets 0x97 (RPC: rateLimited); others are unaffected and
// nothing refused is stored.
func TestPublishRateLimit(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.PublishRate, o.PublishBurst = 1, 3 })
	fast := mqtttest.Dial(t, "fast", mqtttest.Options{URL: tcpURL(b)})
	calm := mqtttest.Dial(t, "calm", mqtttest.Options{URL: tcpURL(b)})
	accepted, limited := 0, 0
	for i := 0; i < 10; i++ {
		switch code := fast.Publish("rooms/general", 1, text("spam"), nil); code {
		case 0:
			accepted++
		case 0x97:
			limited++
		default:
			t.Fatalf("publish %d: 0x%02x", i, code)
		}
	}
	if limited == 0 || accepted < 3 {
		t.Fatalf("accepted %d, limited %d: want the burst of 3 accepted and the rest limited", accepted, limited)
	}
	if _, rerr := fast.RPCRaw("roomHistoryInfo", []byte(`{"room":"general"}`)); rerr == nil || rerr.Code != wire.CodeRateLimited {
		t.Errorf("RPC over the limit: %+v, want rateLimited", rerr)
	}
	if code := calm.Publish("rooms/general", 1, text("hello"), nil); code != 0 {
		t.Errorf("another client: 0x%02x", code)
	}
	var info struct{ LastMessageID uint64 }
	calm.MustSubscribe("rooms/general")
	calm.MustRPC("roomHistoryInfo", map[string]any{"room": "general"}, &info)
	if info.LastMessageID != uint64(accepted+1) {
		t.Errorf("last id %d, want %d: only accepted messages are stored", info.LastMessageID, accepted+1)
	}
}

// A user's connections beyond the limit are refused with 0x97; taking over one's own client id
// is not a new connection.
func TestConnectionsPerUserLimit(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.MaxConnectionsPerUser = 2 })
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(b)})
	watcher.MustSubscribe("presence/cora")
	mqtttest.Dial(t, "cora", mqtttest.Options{URL: tcpURL(b), ClientID: "c1"})
	mqtttest.Dial(t, "cora", mqtttest.Options{URL: tcpURL(b), ClientID: "c2"})
	// A connection counts once it is recorded, just after its CONNACK: wait for that.
	expectPresence(t, watcher, "cora", true, 2)
	third := mqtttest.Dial(t, "cora", mqtttest.Options{URL: wsURL(b), ClientID: "c3", NoFail: true})
	if third.Connack == nil || third.Connack.ReasonCode != 0x97 {
		t.Errorf("third connection: %+v, want CONNACK 0x97", third.Connack)
	}
	mqtttest.Dial(t, "cora", mqtttest.Options{URL: tcpURL(b), ClientID: "c2"}) // takeover
	mqtttest.Dial(t, "other", mqtttest.Options{URL: tcpURL(b)})
}

// A connection's filters beyond the limit are refused with 0x97; resubscribing is no new
// filter.
func TestSubscriptionsPerConnectionLimit(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.MaxSubscriptionsPerConnection = 2 })
	c := mqtttest.Dial(t, "sam", mqtttest.Options{URL: tcpURL(b)})
	codes := c.Subscribe(nil,
		paho.SubscribeOptions{Topic: "a/1", QoS: 1},
		paho.SubscribeOptions{Topic: "rooms/general", QoS: 1},
		paho.SubscribeOptions{Topic: "a/3", QoS: 1})
	if codes[0] != 1 || codes[1] != 1 || codes[2] != 0x97 {
		t.Errorf("SUBACK %x, want 01 01 97", codes)
	}
	if code := c.Subscribe(nil, paho.SubscribeOptions{Topic: "a/1", QoS: 0})[0]; code != 0 {
		t.Errorf("resubscribe: 0x%02x, want 0x00", code)
	}
	v3, err := mqtttest.DialV3(t, tcpURL(b), "val", "")
	if err != nil {
		t.Fatal(err)
	}
	v3.Subscribe("x/1")
	v3.Subscribe("x/2")
	if code := v3.Subscribe("x/3"); code != 0x80 {
		t.Errorf("v3 third filter: 0x%02x, want 0x80", code)
	}
	// The granted room filter joined.
	c.Publish("rooms/general", 1, text("hi"), nil)
	c.Expect("rooms/general")
}

// A packet over the broker's maximum packet size ends the offending connection (Mochi v2.7.9
// closes it without the DISCONNECT 0x95 of [MQTT-3.1.2-24]); other clients carry on and
// nothing is stored.
func TestMaxPacketSize(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.MaxPacketSize = 1024 })
	good := mqtttest.Dial(t, "good", mqtttest.Options{URL: tcpURL(b)})
	good.MustSubscribe("rooms/general")
	big := mqtttest.Dial(t, "big", mqtttest.Options{URL: wsURL(b)})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	go func() {
		_, _ = big.Paho.Publish(ctx, &paho.Publish{Topic: "rooms/general", QoS: 1, Payload: text(string(bytes.Repeat([]byte("x"), 4000)))})
	}()
	select {
	case <-big.Lost():
	case <-ctx.Done():
		t.Fatal("oversize publisher still connected")
	}
	good.Publish("rooms/general", 1, text("fine"), nil)
	if m := decodeRoomMsg(t, good.Expect("rooms/general")); m.ID != 1 {
		t.Errorf("id %d, want 1: the oversize message must not be stored", m.ID)
	}
}
