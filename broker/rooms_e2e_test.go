package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/rooms"
)

func tcpURL(b *broker.Broker) string { return "tcp://" + b.MQTTAddr() }
func wsURL(b *broker.Broker) string  { return "ws://" + b.HTTPAddr() + "/mqtt" }

type roomMsg struct {
	ID          uint64 `json:"id"`
	Author      string `json:"author"`
	Timestamp   int64  `json:"timestamp"`
	TextMessage string `json:"textMessage"`
}

func decodeRoomMsg(t *testing.T, p *paho.Publish) roomMsg {
	t.Helper()
	var m roomMsg
	if err := json.Unmarshal(p.Payload, &m); err != nil {
		t.Fatalf("room message %s: %v", p.Payload, err)
	}
	return m
}

func text(s string) []byte {
	b, _ := json.Marshal(map[string]string{"textMessage": s})
	return b
}

// A room message over TCP reaches a subscriber over WebSocket enriched with id, author and
// timestamp, in the payload and as v5 user properties.
func TestRoomMessageAcrossTransports(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: wsURL(b)})
	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(b)})
	alice.MustSubscribe("rooms/general")

	if code := bob.Publish("rooms/general", 1, text("hello"), nil); code != 0 {
		t.Fatalf("PUBACK reason 0x%02x, want 0", code)
	}
	p := alice.Expect("rooms/general")
	m := decodeRoomMsg(t, p)
	if m.ID != 1 || m.Author != "bob" || m.TextMessage != "hello" || m.Timestamp == 0 {
		t.Fatalf("got %+v, want id 1 by bob saying hello", m)
	}
	for key, want := range map[string]string{"id": "1", "author": "bob", "timestamp": strconv.FormatInt(m.Timestamp, 10)} {
		if got := mqtttest.UserProperty(p, key); got != want {
			t.Errorf("user property %s = %q, want %q", key, got, want)
		}
	}
	if mqtttest.UserProperty(p, "epoch") == "" {
		t.Error("user property epoch is missing")
	}
}

// The checkers refuse what they must, with v5 reason codes, and a refused message is never
// delivered nor stored.
func TestCheckerRefusals(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})
	admin.MustRPC("roomCreate", map[string]any{"room": "data", "checker": "json"}, nil)
	admin.MustRPC("roomCreate", map[string]any{"room": "blobs", "checker": "binary"}, nil)
	admin.MustSubscribe("rooms/general", "rooms/data", "rooms/blobs")

	cases := []struct {
		room    string
		payload string
		want    byte
	}{
		{"general", `not json`, 0x99},
		{"general", `{"textMessage": 5}`, 0x99},
		{"general", `{"textMessage": "hi", "extra": 1}`, 0x99},
		{"general", `{"textMessage": "a", "textMessage": "b"}`, 0x99},
		{"general", `["textMessage"]`, 0x99},
		{"data", `{"id": 7}`, 0x99},
		{"data", `{"author": "mallory"}`, 0x99},
		{"data", `{"a": 1} trailing`, 0x99},
		{"nosuchroom", `{"textMessage": "hi"}`, 0x87},
		{"general", `{"textMessage": "ok"}`, 0x00},
		{"data", `{"temperature": 21.5}`, 0x00},
		{"blobs", "\x00\x01\xff", 0x00},
	}
	for _, tc := range cases {
		for _, qos := range []byte{1, 2} {
			if got := admin.Publish("rooms/"+tc.room, qos, []byte(tc.payload), nil); got != tc.want {
				t.Errorf("publish %q to %s at QoS %d: reason 0x%02x, want 0x%02x", tc.payload, tc.room, qos, got, tc.want)
			}
		}
	}
	// Only the accepted messages arrive, each room with ids 1 and 2.
	for _, room := range []string{"general", "data", "blobs"} {
		for want := 1; want <= 2; want++ {
			p := admin.Expect("rooms/" + room)
			if got := mqtttest.UserProperty(p, "id"); got != strconv.Itoa(want) {
				t.Fatalf("room %s: got id %s, want %d (%s)", room, got, want, p.Payload)
			}
			if room == "blobs" && string(p.Payload) != "\x00\x01\xff" {
				t.Fatalf("binary message changed to %q", p.Payload)
			}
		}
	}
}

// Many publishers at once: every subscriber gets every message exactly once, in id order, with
// ids 1..n and no gap.
func TestConcurrentPublishersOrder(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	const publishers, each = 4, 50
	subs := []*mqtttest.Client{
		mqtttest.Dial(t, "sub1", mqtttest.Options{URL: tcpURL(b)}),
		mqtttest.Dial(t, "sub2", mqtttest.Options{URL: wsURL(b), ReceiveMaximum: 2}),
	}
	for _, s := range subs {
		s.MustSubscribe("rooms/general")
	}
	var wg sync.WaitGroup
	for i := 0; i < publishers; i++ {
		c := mqtttest.Dial(t, fmt.Sprintf("pub%d", i), mqtttest.Options{URL: tcpURL(b)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				c.Publish("rooms/general", byte(j%2), text(fmt.Sprintf("m%d", j)), nil)
			}
		}()
	}
	wg.Wait()
	for _, s := range subs {
		for want := uint64(1); want <= publishers*each; want++ {
			if m := decodeRoomMsg(t, s.Expect("rooms/general")); m.ID != want {
				t.Fatalf("%s: got id %d, want %d", s.ID, m.ID, want)
			}
		}
	}
}

// A client that resumes with since=N gets every message after N, then live ones, with no gap
// and no duplicate, while another client keeps publishing.
func TestResumeNoGapNoDuplicate(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: tcpURL(b)})
	for i := 0; i < 30; i++ {
		pub.Publish("rooms/general", 1, text("before"), nil)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			pub.Publish("rooms/general", 1, text("during"), nil)
		}
	}()
	reader := mqtttest.Dial(t, "reader", mqtttest.Options{URL: wsURL(b)})
	codes := reader.Subscribe(paho.UserProperties{{Key: "since", Value: "10"}}, paho.SubscribeOptions{Topic: "rooms/general", QoS: 1})
	if codes[0] != 1 {
		t.Fatalf("SUBACK 0x%02x", codes[0])
	}
	<-done
	for want := uint64(11); want <= 130; want++ {
		if m := decodeRoomMsg(t, reader.Expect("rooms/general")); m.ID != want {
			t.Fatalf("got id %d, want %d", m.ID, want)
		}
	}
	// Nothing more: the next live message is 131.
	pub.Publish("rooms/general", 1, text("after"), nil)
	if m := decodeRoomMsg(t, reader.Expect("rooms/general")); m.ID != 131 {
		t.Fatalf("got id %d after replay, want 131", m.ID)
	}
}

// Resume from before the history ring gives historyGap first; a stale epoch gives historyReset
// and a replay from the oldest stored message.
func TestResumeGapAndReset(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.HistoryMaxSize = 5 })
	pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: tcpURL(b)})
	for i := 0; i < 12; i++ {
		pub.Publish("rooms/general", 1, text("x"), nil)
	}
	c := mqtttest.Dial(t, "carol", mqtttest.Options{URL: tcpURL(b)})
	c.MustSubscribe("users/carol/events")
	c.Subscribe(paho.UserProperties{{Key: "since:general", Value: "2"}}, paho.SubscribeOptions{Topic: "rooms/general", QoS: 1})
	ev := c.ExpectEvent("users/carol/events", "historyGap")
	if ev["from"] != float64(3) || ev["to"] != float64(7) || ev["room"] != "general" {
		t.Fatalf("historyGap = %v, want from 3 to 7", ev)
	}
	for want := uint64(8); want <= 12; want++ {
		if m := decodeRoomMsg(t, c.Expect("rooms/general")); m.ID != want {
			t.Fatalf("got id %d, want %d", m.ID, want)
		}
	}

	d := mqtttest.Dial(t, "dave", mqtttest.Options{URL: tcpURL(b)})
	d.MustSubscribe("users/dave/events")
	d.Subscribe(paho.UserProperties{{Key: "since", Value: "11"}, {Key: "epoch", Value: "stale"}}, paho.SubscribeOptions{Topic: "rooms/general", QoS: 1})
	ev = d.ExpectEvent("users/dave/events", "historyReset")
	if ev["epoch"] == "" || ev["epoch"] == "stale" {
		t.Fatalf("historyReset = %v", ev)
	}
	if m := decodeRoomMsg(t, d.Expect("rooms/general")); m.ID != 8 {
		t.Fatalf("replay after reset starts at %d, want 8", m.ID)
	}
}

// v3.1.1 clients join and post; a refused v3.1.1 message is dropped, never delivered.
func TestV3RoomMessages(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	v3, err := mqtttest.DialV3(t, tcpURL(b), "victor", "")
	if err != nil {
		t.Fatal(err)
	}
	if code := v3.Subscribe("rooms/general"); code != 1 {
		t.Fatalf("v3 SUBACK 0x%02x", code)
	}
	v3.Publish("rooms/general", 1, []byte("not json"))
	v3.Publish("rooms/general", 1, text("hi from v3"))
	m := v3.Expect("rooms/general")
	var got roomMsg
	if err := json.Unmarshal(m.Payload(), &got); err != nil || got.ID != 1 || got.TextMessage != "hi from v3" || got.Author != "victor" {
		t.Fatalf("got %s, want id 1 from victor (the refused message must not count)", m.Payload())
	}
}

// A persistent session (clean start off, session expiry set) that loses its connection gets,
// on reconnecting, the room messages published meanwhile, without resubscribing, with no gap
// and no duplicate.
func TestPersistentSessionResumesRooms(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: tcpURL(b)})
	persistent := func(cp *paho.Connect) {
		cp.CleanStart = false
		expiry := uint32(300)
		cp.Properties.SessionExpiryInterval = &expiry
	}
	first := mqtttest.Dial(t, "pam", mqtttest.Options{URL: tcpURL(b), ClientID: "pam-tablet", Connect: persistent})
	first.MustSubscribe("rooms/general")
	for i := 0; i < 3; i++ {
		pub.Publish("rooms/general", 1, text("while online"), nil)
	}
	for want := uint64(1); want <= 3; want++ {
		if m := decodeRoomMsg(t, first.Expect("rooms/general")); m.ID != want {
			t.Fatalf("got id %d, want %d", m.ID, want)
		}
	}
	first.Close()
	mqtttest.WaitFor(t, mqtttest.Timeout, "pam offline", func() bool {
		_, ok := b.Subscriptions("pam-tablet")
		return !ok
	})
	for i := 0; i < 4; i++ {
		pub.Publish("rooms/general", 1, text("while offline"), nil)
	}
	second := mqtttest.Dial(t, "pam", mqtttest.Options{URL: wsURL(b), ClientID: "pam-tablet", Connect: persistent})
	if !second.Connack.SessionPresent {
		t.Fatal("session not resumed")
	}
	pub.Publish("rooms/general", 1, text("after"), nil)
	for want := uint64(4); want <= 8; want++ {
		if m := decodeRoomMsg(t, second.Expect("rooms/general")); m.ID != want {
			t.Fatalf("after resuming got id %d, want %d", m.ID, want)
		}
	}
}

// Joining and leaving: rooms/{room}/events gets userJoined on a user's first connection and
// userLeft after the last; the user's connections get roomJoinedEcho and roomLeftEcho.
func TestJoinLeaveEvents(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(b)})
	watcher.MustSubscribe("rooms/general/events")
	echo := mqtttest.Dial(t, "uma", mqtttest.Options{URL: tcpURL(b), ClientID: "uma-echo"})
	echo.MustSubscribe("users/uma/events")

	u1 := mqtttest.Dial(t, "uma", mqtttest.Options{URL: tcpURL(b), ClientID: "uma-1"})
	u1.MustSubscribe("rooms/general")
	if ev := watcher.ExpectEvent("rooms/general/events", "userJoined"); ev["user"] != "uma" || ev["room"] != "general" {
		t.Errorf("userJoined = %v", ev)
	}
	if ev := echo.ExpectEvent("users/uma/events", "roomJoinedEcho"); ev["clientId"] != "uma-1" || ev["connections"] != float64(1) {
		t.Errorf("roomJoinedEcho = %v", ev)
	}
	u2 := mqtttest.Dial(t, "uma", mqtttest.Options{URL: wsURL(b), ClientID: "uma-2"})
	u2.MustSubscribe("rooms/general")
	if ev := echo.ExpectEvent("users/uma/events", "roomJoinedEcho"); ev["clientId"] != "uma-2" || ev["connections"] != float64(2) {
		t.Errorf("roomJoinedEcho = %v", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if _, err := u1.Paho.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"rooms/general"}}); err != nil {
		t.Fatal(err)
	}
	if ev := echo.ExpectEvent("users/uma/events", "roomLeftEcho"); ev["clientId"] != "uma-1" || ev["connections"] != float64(1) {
		t.Errorf("roomLeftEcho = %v", ev)
	}
	u2.Close() // leaving by disconnecting
	if ev := echo.ExpectEvent("users/uma/events", "roomLeftEcho"); ev["clientId"] != "uma-2" || ev["connections"] != float64(0) {
		t.Errorf("roomLeftEcho = %v", ev)
	}
	// One userJoined and one userLeft, however many connections: userLeft comes next.
	if ev := watcher.ExpectEvent("rooms/general/events", "userLeft"); ev["user"] != "uma" {
		t.Errorf("userLeft = %v", ev)
	}
	// An unsubscribed connection gets no more messages of the room.
	watcher.Publish("rooms/general", 1, text("anyone?"), nil)
	u1.MustRPC("listOwnSockets", map[string]any{}, nil)
	u1.ExpectNone("rooms/general", 0)
}

// With rooms management off, only admins create rooms.
func TestRoomsManagementDisabled(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.RoomsManagement = false })
	user := mqtttest.Dial(t, "ursula", mqtttest.Options{URL: tcpURL(b)})
	if code := user.RPCErrorCode("roomCreate", map[string]any{"room": "mine"}); code != "notAllowed" {
		t.Errorf("roomCreate with management off: %s, want notAllowed", code)
	}
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})
	admin.MustRPC("roomCreate", map[string]any{"room": "official"}, nil)
}

// MQTT 3.1.1 over WebSocket, as MQTT.js speaks it in browsers by default.
func TestV3OverWebSocket(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	v3, err := mqtttest.DialV3(t, wsURL(b), "wendy", "")
	if err != nil {
		t.Fatal(err)
	}
	if code := v3.Subscribe("rooms/general"); code != 1 {
		t.Fatalf("SUBACK 0x%02x", code)
	}
	v3.Publish("rooms/general", 1, text("over ws"))
	var got roomMsg
	if err := json.Unmarshal(v3.Expect("rooms/general").Payload(), &got); err != nil || got.ID != 1 || got.Author != "wendy" {
		t.Fatalf("got %+v (%v)", got, err)
	}
}

// A custom checker registered from Go validates the messages of the rooms that name it.
func TestCustomChecker(t *testing.T) {
	checkers := rooms.NewCheckers()
	err := checkers.Register("reading", rooms.CheckerFunc(func(p []byte) ([]byte, bool, error) {
		var r struct {
			Celsius *float64 `json:"celsius"`
		}
		if json.Unmarshal(p, &r) != nil || r.Celsius == nil || *r.Celsius < -273.15 {
			return nil, false, fmt.Errorf("%w: want {\"celsius\": number above absolute zero}", rooms.ErrBadMessage)
		}
		out, _ := json.Marshal(r)
		return out, false, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Checkers = checkers })
	c := mqtttest.Dial(t, "thermo", mqtttest.Options{URL: tcpURL(b)})
	c.MustRPC("roomCreate", map[string]any{"room": "kitchen", "checker": "reading"}, nil)
	c.MustSubscribe("rooms/kitchen")
	if code := c.Publish("rooms/kitchen", 1, []byte(`{"celsius": -300}`), nil); code != 0x99 {
		t.Errorf("impossible reading: 0x%02x, want 0x99", code)
	}
	if code := c.Publish("rooms/kitchen", 1, []byte(`{"celsius": 21.5, "noise": 1}`), nil); code != 0 {
		t.Errorf("reading: 0x%02x", code)
	}
	if p := c.Expect("rooms/kitchen"); !strings.Contains(string(p.Payload), `"celsius":21.5`) || strings.Contains(string(p.Payload), "noise") {
		t.Errorf("stored %s, want the checker's output", p.Payload)
	}
}

// /healthz answers while the process runs; /readyz answers ready while the broker serves.
func TestHealthEndpoints(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + b.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	if err := b.Ready(context.Background()); err != nil {
		t.Errorf("Ready = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(context.Background()); err == nil {
		t.Error("Ready after Shutdown = nil, want an error")
	}
}

// A room keeps history, not retained messages: a room PUBLISH with the retain flag is stored
// and delivered like any other, and a later subscriber gets no retained copy of it.
func TestRoomPublishNotRetained(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	for _, qos := range []byte{0, 1} {
		pr, err := alice.Paho.Publish(context.Background(), &paho.Publish{Topic: "rooms/general", QoS: qos, Retain: true, Payload: text(fmt.Sprintf("retained %d", qos))})
		if err != nil || (pr != nil && pr.ReasonCode != 0) {
			t.Fatalf("publish at QoS %d: %v, %+v", qos, err, pr)
		}
	}
	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(b)})
	bob.MustSubscribe("rooms/general")
	alice.Publish("rooms/general", 1, text("after"), nil)
	p := bob.Expect("rooms/general")
	if m := decodeRoomMsg(t, p); m.TextMessage != "after" || m.ID != 3 || p.Retain {
		t.Errorf("bob's first room message: %+v (retain %v), want id 3 \"after\"", m, p.Retain)
	}
}
