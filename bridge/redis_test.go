package bridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/roomq/roomq/bridge"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/netproxy"
	"github.com/roomq/roomq/internal/redistest"
	"github.com/roomq/roomq/store"
)

// TestRoomWithRedisEdge bridges a room both ways from a broker on Redis (the feed wakes the
// out direction; bridged messages keep their origin in the Redis history) through a cut.
func TestRoomWithRedisEdge(t *testing.T) {
	client, err := store.NewRedisClient([]string{"redis://" + redistest.Standalone(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	edgeStore, err := store.NewRedis(ctx, store.RedisOptions{Client: client, Prefix: "edge"})
	if err != nil {
		t.Fatal(err)
	}
	edge := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = edgeStore })
	cloud := mqtttest.StartBroker(t, nil)
	px := netproxy.New(t, cloud.MQTTAddr())
	b := runBridge(t, bridge.Options{
		Config: bridge.Config{
			Name: "cloud", LocalName: "edge", URL: px.URL(), User: "edge-gw",
			Rooms:        []bridge.RoomMapping{{Local: "general", Remote: "general", Direction: bridge.Both}},
			ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
		},
		Rooms: edge.Rooms(), Poster: edge.Commands(), Feed: edgeStore, Poll: time.Minute, // the feed must wake it
	})
	waitJoined(t, b)
	const n = 30
	for i := 1; i <= n; i++ {
		post(t, edge, "alice", "general", fmt.Sprintf("alice %d", i))
		post(t, cloud, "bob", "general", fmt.Sprintf("bob %d", i))
		if i == n/2 {
			px.Cut()
		}
	}
	post(t, edge, "alice", "general", "alice end")
	post(t, cloud, "bob", "general", "bob end")
	want := uint64(2*n + 2)
	mqtttest.WaitFor(t, waitTimeout, "both rooms complete", func() bool {
		return lastID(t, edge, "general") >= want && lastID(t, cloud, "general") >= want
	})
	mqtttest.WaitFor(t, waitTimeout, "bridge positions at the ends", func() bool {
		r := b.Status().Rooms[0]
		return r.LastOut == want && r.LastIn == want
	})
	checkSide(t, "edge", history(t, edge, "general"), "alice", "bob", "bridge-cloud", "cloud", n)
	checkSide(t, "cloud", history(t, cloud, "general"), "bob", "alice", "edge-gw", "edge", n)
}
