package bridge_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/wire"
)

// TestOriginProperties checks the broker's side of the contract that bridges rely on: a
// PUBLISH to a room with origin properties is stored with them and delivered with them, a
// resend is acknowledged but not stored twice, a new origin epoch starts the ids again, and a
// malformed origin is refused.
func TestOriginProperties(t *testing.T) {
	br := mqtttest.StartBroker(t, nil)
	url := "tcp://" + br.MQTTAddr()
	sub := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: url})
	sub.MustSubscribe("rooms/general")
	pub := mqtttest.Dial(t, "gw", mqtttest.Options{URL: url})
	send := func(text, broker, id, epoch string) byte {
		t.Helper()
		props := paho.UserProperties{}
		for _, kv := range [][2]string{{wire.PropOriginBroker, broker}, {wire.PropOriginID, id}, {wire.PropOriginEpoch, epoch}} {
			if kv[1] != "" {
				props = append(props, paho.UserProperty{Key: kv[0], Value: kv[1]})
			}
		}
		return pub.Publish("rooms/general", 1, []byte(`{"textMessage":"`+text+`"}`), &paho.PublishProperties{User: props})
	}
	for _, tc := range []struct {
		text, broker, id, epoch string
		code                    byte
		stored                  bool
	}{
		{"a", "edge", "5", "e1", 0, true},
		{"a again", "edge", "5", "e1", 0, false},   // a resend
		{"older", "edge", "3", "e1", 0, false},     // a late packet of a dead connection
		{"b", "edge", "6", "e1", 0, true},          // the next one
		{"restart", "edge", "1", "e2", 0, true},    // the edge's history started again
		{"other", "plant", "1", "e1", 0, true},     // another origin
		{"plain", "", "", "", 0, true},             // no origin
		{"bad id", "edge", "x", "e1", 0x99, false}, // refused
		{"bad broker", "a/b", "1", "", 0x99, false},
		{"id alone", "", "7", "", 0x99, false},
	} {
		if code := send(tc.text, tc.broker, tc.id, tc.epoch); code != tc.code {
			t.Errorf("%s: reason code %#x, want %#x", tc.text, code, tc.code)
		}
	}
	want := []struct{ text, broker, id string }{{"a", "edge", "5"}, {"b", "edge", "6"}, {"restart", "edge", "1"}, {"other", "plant", "1"}, {"plain", "", ""}}
	for _, w := range want {
		p := sub.Expect("rooms/general")
		if got := mqtttest.UserProperty(p, wire.PropOriginBroker); got != w.broker || mqtttest.UserProperty(p, wire.PropOriginID) != w.id {
			t.Errorf("delivery %s: origin %q %q, want %q %q", p.Payload, got, mqtttest.UserProperty(p, wire.PropOriginID), w.broker, w.id)
		}
	}
	msgs := history(t, br, "general")
	if len(msgs) != len(want) {
		t.Fatalf("%d messages stored, want %d", len(msgs), len(want))
	}
	for i, w := range want {
		if id := msgs[i].OriginID; msgs[i].OriginBroker != w.broker || (w.id != "" && id == 0) {
			t.Errorf("stored message %d: origin %q %d, want %q %s", i, msgs[i].OriginBroker, id, w.broker, w.id)
		}
	}
}

// TestOriginRunsHooks checks that origin properties do not let a message past the
// roomMessage command hooks.
func TestOriginRunsHooks(t *testing.T) {
	h := commands.NewHooks()
	h.Before(commands.CommandRoomMessage, func(ctx context.Context, call *commands.Call) (any, error) {
		if bytes.Contains(call.Args, []byte("spam")) {
			return nil, wire.NewError(wire.CodeNotAllowed, "no spam")
		}
		return nil, nil
	})
	br := mqtttest.StartBroker(t, func(o *broker.Options) { o.Hooks = h })
	pub := mqtttest.Dial(t, "gw", mqtttest.Options{URL: "tcp://" + br.MQTTAddr()})
	props := &paho.PublishProperties{User: paho.UserProperties{{Key: wire.PropOriginBroker, Value: "edge"}, {Key: wire.PropOriginID, Value: "1"}}}
	if code := pub.Publish("rooms/general", 1, []byte(`{"textMessage":"spam"}`), props); code != 0x87 {
		t.Fatalf("bridged spam: reason code %#x, want 0x87", code)
	}
	props.User[1].Value = "2"
	if code := pub.Publish("rooms/general", 1, []byte(`{"textMessage":"fine"}`), props); code != 0 {
		t.Fatalf("bridged message: reason code %#x", code)
	}
	if msgs := history(t, br, "general"); len(msgs) != 1 || msgs[0].OriginID != 2 {
		t.Fatalf("stored %d messages", len(msgs))
	}
}
