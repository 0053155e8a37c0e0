package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
)

// The broker never has more unacknowledged QoS 1 messages out to a client than the client's
// Receive Maximum, and sends the next one as soon as one is acknowledged.
func TestReceiveMaximumRespected(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: tcpURL(b)})

	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	rm := uint16(2)
	slow, received := dialManualAck(t, b, "slow", &paho.ConnectProperties{ReceiveMaximum: &rm, RequestProblemInfo: true})
	if _, err := slow.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "rooms/general", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		pub.Publish("rooms/general", 1, text(fmt.Sprintf("m%d", i)), nil)
	}
	next := func() *paho.Publish {
		t.Helper()
		select {
		case p := <-received:
			return p
		case <-time.After(mqtttest.Timeout):
			t.Fatal("no message")
			return nil
		}
	}
	noMore := func() {
		t.Helper()
		select {
		case p := <-received:
			t.Fatalf("message %s beyond the Receive Maximum", p.Payload)
		case <-time.After(300 * time.Millisecond):
		}
	}
	first, second := next(), next()
	noMore()
	if err := slow.Ack(first); err != nil {
		t.Fatal(err)
	}
	third := next()
	noMore()
	for _, p := range []*paho.Publish{second, third} {
		if err := slow.Ack(p); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := slow.Ack(next()); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Contains(third.Payload, []byte(`"id":3`)) {
		t.Errorf("third message %s, want id 3", third.Payload)
	}
}

// A client that stops reading is disconnected once it falls more than MaxQueued packets behind,
// instead of silently missing messages; everyone else keeps receiving.
func TestSlowConsumerDisconnected(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) {
		o.MaxQueued = 8
		o.HistoryMaxSize = 10
	})
	fast := mqtttest.Dial(t, "fast", mqtttest.Options{URL: tcpURL(b)})
	fast.MustSubscribe("rooms/general")

	// A raw client that subscribes and then never reads.
	raw := mqtttest.DialConn(t, tcpURL(b))
	defer raw.Close()
	if _, err := raw.Write(connectPacket("stuck", "stuck", 0, "devices/stuck/status", "x")); err != nil {
		t.Fatal(err)
	}
	sub := []byte{0x82, 0x12, 0x00, 0x01, 0x00, 0x0D, 'r', 'o', 'o', 'm', 's', '/', 'g', 'e', 'n', 'e', 'r', 'a', 'l', 0x01}
	if _, err := raw.Write(sub); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, mqtttest.Timeout, "stuck subscribed", func() bool {
		subs, ok := b.Subscriptions("stuck")
		return ok && len(subs) == 1
	})
	payload := text(string(bytes.Repeat([]byte("x"), 64<<10)))
	sent := 0
	for ; sent < 1000; sent++ {
		if _, ok := b.Subscriptions("stuck"); !ok {
			break
		}
		fast.Publish("rooms/general", 1, payload, nil)
		fast.Expect("rooms/general")
	}
	if _, ok := b.Subscriptions("stuck"); ok {
		t.Fatalf("stuck client still connected after %d messages of 64 KiB", sent)
	}
	t.Logf("stuck client disconnected after %d messages", sent)
	scrapeMetrics(t, b).expect(t, 1, "roomq_dropped_total", "reason=slow_consumer")
}

// A client's own packet ids never clash with the ids of the broker's unacknowledged messages
// to it (Mochi keeps both in one map): with room messages in flight, SUBSCRIBE still works.
func TestPacketIDsDoNotClash(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: tcpURL(b)})
	received := make(chan *paho.Publish, 100)
	conn := packets.NewThreadSafeConn(mqtttest.DialConn(t, tcpURL(b)))
	c := paho.NewClient(paho.ClientConfig{
		Conn:                       conn,
		EnableManualAcknowledgment: true, // never acknowledges: the broker's ids stay in flight
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			received <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "holder", Username: "holder", UsernameFlag: true, CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(&paho.Disconnect{}) }()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "rooms/general", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		pub.Publish("rooms/general", 1, text("x"), nil)
		<-received
	}
	for i := 0; i < 5; i++ {
		if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: fmt.Sprintf("devices/%d", i), QoS: 1}}}); err != nil {
			t.Fatalf("SUBSCRIBE %d with messages in flight: %v", i, err)
		}
	}
}

// A client's packet ids and the broker's are separate [MQTT-2.2.1]: while a message the
// broker sent at QoS 1 waits for its PUBACK, the client's own SUBSCRIBE and PUBLISH with low
// ids go through (Mochi v2.7.9 keeps both in one map; the broker numbers its own from 16385).
func TestPacketIDsSeparate(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: tcpURL(b)})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	c, received := dialManualAck(t, b, "ids", nil)
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "cmd/ids", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub.Publish("cmd/ids", 1, []byte("go"), nil)
	var p *paho.Publish
	select {
	case p = <-received:
	case <-time.After(mqtttest.Timeout):
		t.Fatal("no message")
	}
	if p.PacketID <= 1<<14 {
		t.Errorf("the broker's packet id %d is in the range clients count from", p.PacketID)
	}
	// Not acknowledged yet: the client's next ids (from 1 again) must not be refused.
	for i := range 3 {
		sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: fmt.Sprintf("cmd/more%d", i), QoS: 1}}})
		if err != nil || sa.Reasons[0] >= 0x80 {
			t.Fatalf("SUBSCRIBE while the broker's message is unacknowledged: %v %v", sa, err)
		}
		pr, err := c.Publish(ctx, &paho.Publish{Topic: "cmd/echo", QoS: 1, Payload: []byte("x")})
		if err != nil || pr.ReasonCode >= 0x80 {
			t.Fatalf("PUBLISH while the broker's message is unacknowledged: %v %v", pr, err)
		}
	}
	if err := c.Ack(p); err != nil {
		t.Fatal(err)
	}
}

// dialManualAck connects a v5 client as user clientID that acknowledges QoS > 0 messages only
// when the test calls Ack; it returns the client and the messages it receives.
func dialManualAck(t *testing.T, b *broker.Broker, clientID string, props *paho.ConnectProperties) (*paho.Client, chan *paho.Publish) {
	t.Helper()
	received := make(chan *paho.Publish, 100)
	c := paho.NewClient(paho.ClientConfig{
		Conn:                       packets.NewThreadSafeConn(mqtttest.DialConn(t, tcpURL(b))),
		EnableManualAcknowledgment: true,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			received <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, Username: clientID, UsernameFlag: true, CleanStart: true, KeepAlive: 30, Properties: props}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, received
}

// A room message is encoded once for all its receivers, yet each still gets it as it asked:
// with its own subscription identifier, with its own packet id, and not at all when it is
// over the client's Maximum Packet Size ([MQTT-3.1.2-25]), the next message still arriving;
// and with its user properties even when it asked for no problem information.
func TestRoomDeliveryPerReceiver(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: tcpURL(b)})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()

	plain, plainGot := dialManualAck(t, b, "plain", &paho.ConnectProperties{RequestProblemInfo: true})
	tagged, taggedGot := dialManualAck(t, b, "tagged", &paho.ConnectProperties{RequestProblemInfo: true})
	maxSize := uint32(300)
	small, smallGot := dialManualAck(t, b, "small", &paho.ConnectProperties{RequestProblemInfo: true, MaximumPacketSize: &maxSize})
	// Request Problem Information 0 leaves user properties out of other packets, not PUBLISH.
	quiet, quietGot := dialManualAck(t, b, "quiet", &paho.ConnectProperties{RequestProblemInfo: false})
	subID := 7
	for _, s := range []struct {
		c     *paho.Client
		props *paho.SubscribeProperties
	}{{plain, nil}, {tagged, &paho.SubscribeProperties{SubscriptionIdentifier: &subID}}, {small, nil},
		{quiet, &paho.SubscribeProperties{SubscriptionIdentifier: &subID}}} {
		if _, err := s.c.Subscribe(ctx, &paho.Subscribe{Properties: s.props,
			Subscriptions: []paho.SubscribeOptions{{Topic: "rooms/general", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	pub.Publish("rooms/general", 1, text(strings.Repeat("long ", 100)), nil)
	pub.Publish("rooms/general", 1, text("short"), nil)

	next := func(name string, c *paho.Client, got chan *paho.Publish) *paho.Publish {
		t.Helper()
		select {
		case p := <-got:
			if err := c.Ack(p); err != nil {
				t.Fatal(err)
			}
			return p
		case <-time.After(mqtttest.Timeout):
			t.Fatalf("%s: no message", name)
			return nil
		}
	}
	for _, r := range []struct {
		name  string
		c     *paho.Client
		got   chan *paho.Publish
		ids   []uint64
		subID int
	}{{"plain", plain, plainGot, []uint64{1, 2}, 0}, {"tagged", tagged, taggedGot, []uint64{1, 2}, subID}, {"small", small, smallGot, []uint64{2}, 0},
		{"quiet", quiet, quietGot, []uint64{1, 2}, subID}} {
		for _, want := range r.ids {
			p := next(r.name, r.c, r.got)
			if m := decodeRoomMsg(t, p); m.ID != want {
				t.Errorf("%s: message %d, want %d", r.name, m.ID, want)
			}
			if got := p.Properties.User.Get("id"); got != strconv.FormatUint(want, 10) {
				t.Errorf("%s: user property id %q, want %d", r.name, got, want)
			}
			var gotSub int
			if p.Properties.SubscriptionIdentifier != nil {
				gotSub = *p.Properties.SubscriptionIdentifier
			}
			if gotSub != r.subID {
				t.Errorf("%s: subscription identifier %d, want %d", r.name, gotSub, r.subID)
			}
			if p.PacketID < 1<<15 {
				t.Errorf("%s: packet id %d outside the server's range", r.name, p.PacketID)
			}
		}
	}
}

// A connection's room posts are on their way together, yet their PUBACKs come in the order
// of the PUBLISHes [MQTT-4.6.0-2], across rooms and with a refusal among them, and each room
// stores them in that order.
func TestPipelinedPostsKeepOrder(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	owner := mqtttest.Dial(t, "ann", mqtttest.Options{URL: tcpURL(b)})
	owner.MustRPC("roomCreate", map[string]any{"room": "other"}, nil)
	owner.MustSubscribe("rooms/general") // joined: may read its history

	c := mqtttest.DialConn(t, tcpURL(b))
	defer c.Close()
	connect := packets.NewControlPacket(packets.CONNECT)
	cp := connect.Content.(*packets.Connect)
	cp.ProtocolName, cp.ProtocolVersion, cp.ClientID, cp.CleanStart, cp.KeepAlive = "MQTT", 5, "piper", true, 30
	cp.Username, cp.UsernameFlag = "piper", true
	cp.Properties = &packets.Properties{}
	if _, err := connect.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(mqtttest.Timeout))
	if ack, err := packets.ReadPacket(c); err != nil || ack.Content.(*packets.Connack).ReasonCode != 0 {
		t.Fatalf("CONNACK %v, %v", ack, err)
	}
	const n, refused = 40, 17
	var all bytes.Buffer
	for id := uint16(1); id <= n; id++ {
		pub := packets.NewControlPacket(packets.PUBLISH)
		p := pub.Content.(*packets.Publish)
		p.QoS, p.PacketID, p.Properties = 1, id, &packets.Properties{}
		p.Topic = map[bool]string{true: "rooms/general", false: "rooms/other"}[id%2 == 0]
		p.Payload = text(fmt.Sprintf("m%d", id))
		if id == refused {
			p.Payload = []byte("not json") // the text checker refuses it: 0x99
		}
		if _, err := pub.WriteTo(&all); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Write(all.Bytes()); err != nil { // all at once: they are in the broker together
		t.Fatal(err)
	}
	for want := uint16(1); want <= n; want++ {
		pk, err := packets.ReadPacket(c)
		if err != nil {
			t.Fatalf("after %d PUBACKs: %v", want-1, err)
		}
		ack, ok := pk.Content.(*packets.Puback)
		if !ok {
			t.Fatalf("got %s, want PUBACK %d", pk.PacketType(), want)
		}
		wantCode := byte(0)
		if want == refused {
			wantCode = 0x99
		}
		if ack.PacketID != want || ack.ReasonCode != wantCode {
			t.Fatalf("PUBACK %d (0x%02x), want %d (0x%02x)", ack.PacketID, ack.ReasonCode, want, wantCode)
		}
	}
	for _, room := range []string{"general", "other"} {
		var msgs []roomMsg
		owner.MustRPC("roomHistoryGet", map[string]any{"room": room}, &msgs)
		last := 0
		for _, m := range msgs {
			var k int
			if _, err := fmt.Sscanf(m.TextMessage, "m%d", &k); err != nil || k <= last {
				t.Fatalf("room %s history %v: out of order at %q", room, msgs, m.TextMessage)
			}
			last = k
		}
		if len(msgs) != n/2-map[bool]int{true: 1, false: 0}[room == "other"] {
			t.Errorf("room %s has %d messages", room, len(msgs))
		}
	}
}

// A command that follows room posts on the same connection sees them: the history read after
// a QoS 0 post holds it.
func TestPostThenHistoryOnOneConnection(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	c := mqtttest.Dial(t, "reader", mqtttest.Options{URL: tcpURL(b)})
	c.MustSubscribe("rooms/general") // joined: may read its history
	for i := range 20 {
		want := fmt.Sprintf("ryw %d", i)
		c.Publish("rooms/general", 0, text(want), nil)
		var msgs []roomMsg
		c.MustRPC("roomHistoryGet", map[string]any{"room": "general"}, &msgs)
		if len(msgs) == 0 || msgs[len(msgs)-1].TextMessage != want {
			t.Fatalf("history after posting %q: %+v", want, msgs)
		}
	}
}

// With a write delay, room messages, events and RPC answers still all arrive, in order.
func TestWriteDelayDelivers(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.WriteDelay = 20 * time.Millisecond })
	sub := mqtttest.Dial(t, "sub", mqtttest.Options{URL: tcpURL(b)})
	sub.MustSubscribe("rooms/general")
	pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: wsURL(b)})
	for i := range 50 {
		pub.Publish("rooms/general", 1, text(strconv.Itoa(i)), nil)
	}
	for want := uint64(1); want <= 50; want++ {
		if m := decodeRoomMsg(t, sub.Expect("rooms/general")); m.ID != want {
			t.Fatalf("got id %d, want %d", m.ID, want)
		}
	}
	var history []roomMsg
	sub.MustRPC("roomHistoryGet", map[string]any{"room": "general", "limit": 5}, &history)
	if len(history) != 5 {
		t.Fatalf("history has %d messages, want 5", len(history))
	}
}

// A subscriber at QoS 2 gets room messages at QoS 2, whatever the QoS they were posted at
// (the broker stores them and sends them as its own, as history replays them), in order,
// beyond its Receive Maximum: each completed exchange frees a place.
func TestRoomDeliveryQoS2(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	sub := mqtttest.Dial(t, "sub", mqtttest.Options{URL: tcpURL(b), ReceiveMaximum: 2})
	if codes := sub.Subscribe(nil, paho.SubscribeOptions{Topic: "rooms/general", QoS: 2}); codes[0] != 2 {
		t.Fatalf("SUBACK 0x%02x, want QoS 2 granted", codes[0])
	}
	pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: tcpURL(b)})
	for i := range 8 {
		pub.Publish("rooms/general", byte(1+i%2), text(strconv.Itoa(i)), nil)
	}
	for want := uint64(1); want <= 8; want++ {
		p := sub.Expect("rooms/general")
		if m := decodeRoomMsg(t, p); m.ID != want {
			t.Fatalf("got id %d, want %d", m.ID, want)
		}
		if p.QoS != 2 {
			t.Fatalf("id %d came at QoS %d, want 2", want, p.QoS)
		}
	}
}
