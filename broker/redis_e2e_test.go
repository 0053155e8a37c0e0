package broker_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/redistest"
	"github.com/roomq/roomq/store"
)

// redisStore opens a Redis store on the servers at addrs with key prefix prefix; the broker
// that gets it closes it.
func redisStore(t *testing.T, addrs []string, prefix string) store.Store {
	t.Helper()
	urls := make([]string, len(addrs))
	for i, a := range addrs {
		urls[i] = "redis://" + a
	}
	client, err := store.NewRedisClient(urls)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.NewRedis(ctx, store.RedisOptions{Client: client, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Two brokers on one Redis (a single server, then a 3-master Cluster): room messages posted on
// both at once reach the subscribers of both in id order, once; a late joiner on either
// resumes from the shared history.
func TestRedisInstances(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs func(t *testing.T) []string
	}{
		{"standalone", func(t *testing.T) []string { return []string{redistest.Standalone(t)} }},
		{"cluster", func(t *testing.T) []string { return redistest.Cluster(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs := tc.addrs(t)
			var bs []*broker.Broker
			for range 2 {
				st := redisStore(t, addrs, "e2e")
				bs = append(bs, mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st }))
			}
			total := postEverywhereInOrder(t, bs, 1, 40)
			admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(bs[1])})
			var info struct{ LastMessageID uint64 }
			admin.MustRPC("roomHistoryInfo", map[string]any{"room": "general"}, &info)
			if info.LastMessageID != total {
				t.Errorf("history of the other instance ends at %d, want %d", info.LastMessageID, total)
			}
		})
	}
}

// Redis goes away mid-traffic and comes back: while it is away nothing is acknowledged (v5
// PUBACK 0x88, RPC storeUnavailable) and /readyz says not ready; once it is back the broker
// serves again without a restart, and every message acknowledged before is still there, with
// no gap in the ids.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Durable(t)
	st := redisStore(t, []string{srv.Addr()}, "outage")
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st })
	sub := mqtttest.Dial(t, "sub", mqtttest.Options{URL: tcpURL(b)})
	sub.MustSubscribe("rooms/general")
	pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: tcpURL(b)})
	for i := 0; i < 5; i++ {
		if code := pub.Publish("rooms/general", 1, text("before"), nil); code != 0 {
			t.Fatalf("publish before the outage: 0x%02x", code)
		}
	}
	for want := uint64(1); want <= 5; want++ {
		if m := decodeRoomMsg(t, sub.Expect("rooms/general")); m.ID != want {
			t.Fatalf("got id %d, want %d", m.ID, want)
		}
	}

	srv.Kill()
	if code := pub.Publish("rooms/general", 1, text("during"), nil); code != 0x88 {
		t.Errorf("publish during the outage: 0x%02x, want 0x88 (server unavailable)", code)
	}
	if code := pub.RPCErrorCode("roomHistoryInfo", map[string]any{"room": "general"}); code != "storeUnavailable" {
		t.Errorf("RPC during the outage: %s, want storeUnavailable", code)
	}
	if code := readyz(t, b); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %d, want 503", code)
	}

	srv.Start()
	mqtttest.WaitFor(t, 30*time.Second, "/readyz after Redis is back", func() bool { return readyz(t, b) == http.StatusOK })
	mqtttest.WaitFor(t, 30*time.Second, "a publish accepted after Redis is back", func() bool {
		return pub.Publish("rooms/general", 1, text("after"), nil) == 0
	})
	if m := decodeRoomMsg(t, sub.Expect("rooms/general")); m.ID != 6 {
		t.Fatalf("first message after the outage has id %d, want 6", m.ID)
	}
	var info struct{ LastMessageID, HistorySize uint64 }
	sub.MustRPC("roomHistoryInfo", map[string]any{"room": "general"}, &info)
	if info.HistorySize < 6 || info.LastMessageID < 6 {
		t.Errorf("history after the outage: %+v, want the 5 acknowledged messages and the new one", info)
	}
}

func readyz(t *testing.T, b *broker.Broker) int {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// When Redis loses its data, the broker creates its configured rooms again with a new epoch,
// and subscribers learn of the reset from the epoch of the next message (whose id starts at 1
// again).
func TestRedisDataLoss(t *testing.T) {
	addr := redistest.Standalone(t)
	st := redisStore(t, []string{addr}, "loss")
	b := mqtttest.StartBroker(t, func(o *broker.Options) {
		o.Store = st
		o.RoomCheckInterval = 50 * time.Millisecond
	})
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})
	sub := mqtttest.Dial(t, "sub", mqtttest.Options{URL: tcpURL(b)})
	sub.MustSubscribe("rooms/general")
	for i := 0; i < 3; i++ {
		admin.Publish("rooms/general", 1, text("old"), nil)
	}
	var first string
	for i := 0; i < 3; i++ {
		first = mqtttest.UserProperty(sub.Expect("rooms/general"), "epoch")
	}

	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	if err := rc.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	var info struct{ Epoch string }
	mqtttest.WaitFor(t, 10*time.Second, "general created again", func() bool {
		res, rerr := admin.RPC("roomHistoryInfo", map[string]any{"room": "general"})
		return rerr == nil && json.Unmarshal(res, &info) == nil && info.Epoch != first
	})
	admin.Publish("rooms/general", 1, text("new"), nil)
	p := sub.Expect("rooms/general")
	if m := decodeRoomMsg(t, p); m.ID != 1 || mqtttest.UserProperty(p, "epoch") != info.Epoch {
		t.Fatalf("after the loss got id %d epoch %s, want id 1 epoch %s", m.ID, mqtttest.UserProperty(p, "epoch"), info.Epoch)
	}
}
