package bridge_test

import (
	"strings"
	"testing"
	"time"

	"github.com/roomq/roomq/bridge"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/netproxy"
	"github.com/roomq/roomq/store"
)

// TestRoomsAndTopics runs a bridge that maps a room and a plain topic to the same roomq
// broker, as config.bridge-edge.yaml does: it holds a connection of each kind there, with
// distinct client ids, reports Connected only while both are up, and both mappings carry
// messages before and after a cut.
func TestRoomsAndTopics(t *testing.T) {
	cloud := mqtttest.StartBroker(t, nil)
	edgeStore := store.NewMemory()
	edge := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = edgeStore })
	px := netproxy.New(t, cloud.MQTTAddr())
	b := runBridge(t, bridge.Options{
		Config: bridge.Config{
			Name: "cloud", LocalName: "edge", URL: px.URL(), User: "edge-gw",
			Rooms:        []bridge.RoomMapping{{Local: "general", Remote: "general", Direction: bridge.Out}},
			Topics:       []bridge.TopicMapping{{Local: "sensors", Remote: "site1/sensors", Direction: bridge.Out, QoS: 1}},
			ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
		},
		Rooms: edge.Rooms(), Poster: edge.Commands(), Feed: edgeStore, Poll: 50 * time.Millisecond,
		Local: bridge.LocalMQTT{URL: "tcp://" + edge.MQTTAddr(), User: "bridge"},
	})
	waitJoined(t, b)
	mqtttest.WaitFor(t, waitTimeout, "topics ready", func() bool { return b.Status().TopicsReady })
	if s := b.Status(); s.Connections < 2 {
		t.Fatalf("status %+v: want a connection for rooms and one for topics", s)
	}
	farSub := mqtttest.Dial(t, "ops", mqtttest.Options{URL: "tcp://" + cloud.MQTTAddr()})
	farSub.MustSubscribe("site1/sensors/#")
	edgePub := mqtttest.Dial(t, "dev", mqtttest.Options{URL: "tcp://" + edge.MQTTAddr()})

	carry := func(round string) {
		t.Helper()
		before := lastID(t, cloud, "general")
		post(t, edge, "alice", "general", round)
		edgePub.Publish("sensors/"+round, 1, []byte(round), nil)
		mqtttest.WaitFor(t, waitTimeout, "room message "+round, func() bool { return lastID(t, cloud, "general") == before+1 })
		for {
			if p := farSub.Expect("site1/sensors/#"); p.Topic == "site1/sensors/"+round {
				break
			}
		}
	}
	carry("before")
	conns := b.Status().Connections
	px.Cut()
	mqtttest.WaitFor(t, waitTimeout, "both connections back", func() bool {
		s := b.Status()
		return s.Connected && s.Connections >= conns+2 && s.TopicsReady && s.Rooms[0].Joined
	})
	carry("after")
	msgs := history(t, cloud, "general")
	for _, m := range msgs {
		if m.Author != "edge-gw" || m.OriginBroker != "edge" || !strings.Contains(string(m.Message.Payload), "textMessage") {
			t.Errorf("cloud stored %+v", m.Message)
		}
	}
	if len(msgs) != 2 {
		t.Errorf("cloud has %d room messages, want 2", len(msgs))
	}
}
