package broker_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/redistest"
	"github.com/roomq/roomq/store"
)

// startInstances starts n brokers sharing st, as instances behind a load balancer would.
func startInstances(t *testing.T, n int, st store.Store) []*broker.Broker {
	t.Helper()
	out := make([]*broker.Broker, n)
	for i := range out {
		out[i] = mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st })
	}
	return out
}

// A room message accepted on any instance reaches the subscribers on every instance, in id
// order, once, while clients publish on all of them at once.
func TestCrossInstanceDeliveryInOrder(t *testing.T) {
	postEverywhereInOrder(t, startInstances(t, 2, store.NewMemory()), 2, 60)
}

// postEverywhereInOrder has publishers (perInstance on each instance, each posting n
// messages, at QoS 0 and 1 alternately) post to rooms/general at once, and checks that a
// subscriber on every instance gets ids 1..total in order, once each. It returns total.
func postEverywhereInOrder(t *testing.T, bs []*broker.Broker, perInstance, n int) uint64 {
	t.Helper()
	var subs []*mqtttest.Client
	for i, b := range bs {
		s := mqtttest.Dial(t, fmt.Sprintf("sub%d", i), mqtttest.Options{URL: tcpURL(b)})
		s.MustSubscribe("rooms/general")
		subs = append(subs, s)
	}
	var wg sync.WaitGroup
	for i, b := range bs {
		for j := 0; j < perInstance; j++ {
			p := mqtttest.Dial(t, fmt.Sprintf("pub%d-%d", i, j), mqtttest.Options{URL: wsURL(b)})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < n; k++ {
					p.Publish("rooms/general", byte(k%2), text("x"), nil)
				}
			}()
		}
	}
	wg.Wait()
	total := uint64(len(bs) * perInstance * n)
	for _, s := range subs {
		for want := uint64(1); want <= total; want++ {
			if m := decodeRoomMsg(t, s.Expect("rooms/general")); m.ID != want {
				t.Fatalf("%s: got id %d, want %d", s.ID, m.ID, want)
			}
		}
	}
	return total
}

// A subscriber that resumes on another instance gets every message after its position, from
// both instances, with no gap and no duplicate.
func TestCrossInstanceResume(t *testing.T) {
	st := store.NewMemory()
	bs := startInstances(t, 2, st)
	a := mqtttest.Dial(t, "ann", mqtttest.Options{URL: tcpURL(bs[0])})
	bpub := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(bs[1])})
	for i := 0; i < 10; i++ {
		a.Publish("rooms/general", 1, text("on a"), nil)
		bpub.Publish("rooms/general", 1, text("on b"), nil)
	}
	r := mqtttest.Dial(t, "rex", mqtttest.Options{URL: wsURL(bs[1])})
	r.Subscribe(paho.UserProperties{{Key: "since", Value: "5"}}, paho.SubscribeOptions{Topic: "rooms/general", QoS: 1})
	a.Publish("rooms/general", 1, text("live from a"), nil)
	for want := uint64(6); want <= 21; want++ {
		if m := decodeRoomMsg(t, r.Expect("rooms/general")); m.ID != want {
			t.Fatalf("got id %d, want %d", m.ID, want)
		}
	}
}

// Direct messages, presence, user events and room events reach connections on the other
// instance.
func TestCrossInstanceUserTraffic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) (store.Store, store.Store)
	}{
		{"memory", func(t *testing.T) (store.Store, store.Store) { st := store.NewMemory(); return st, st }},
		{"redis", func(t *testing.T) (store.Store, store.Store) {
			addr := redistest.Standalone(t)
			return redisStore(t, []string{addr}, "users"), redisStore(t, []string{addr}, "users")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s1, s2 := tc.store(t)
			a := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = s1 })
			b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = s2 })

			bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(b)})
			bob.MustSubscribe("users/bob/inbox", "users/bob/events", "presence/+", "rooms/general/events")
			alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(a), ClientID: "alice-a"})
			expectPresence(t, bob, "alice", true, 1) // presence made on A, seen on B

			alice.MustRPC("directMessage", map[string]any{"user": "bob", "message": map[string]string{"textMessage": "across"}}, nil)
			if p := bob.Expect("users/bob/inbox"); !bytes.Contains(p.Payload, []byte(`"across"`)) {
				t.Errorf("inbox got %s", p.Payload)
			}
			bobA := mqtttest.Dial(t, "bob", mqtttest.Options{URL: wsURL(a), ClientID: "bob-a"})
			if ev := bob.ExpectEvent("users/bob/events", "connectionEcho"); ev["clientId"] != "bob-a" || ev["connections"] != float64(2) {
				t.Errorf("connectionEcho on B for a connection on A = %v", ev)
			}
			bobA.MustRPC("systemMessage", map[string]any{"data": "hello other me"}, nil)
			if ev := bob.ExpectEvent("users/bob/events", "systemMessage"); ev["data"] != "hello other me" {
				t.Errorf("systemMessage = %v", ev)
			}
			alice.MustSubscribe("rooms/general")
			if ev := bob.ExpectEvent("rooms/general/events", "userJoined"); ev["user"] != "alice" {
				t.Errorf("userJoined = %v", ev)
			}
			late := mqtttest.Dial(t, "late", mqtttest.Options{URL: tcpURL(b)})
			late.MustSubscribe("presence/alice")
			expectPresence(t, late, "alice", true, 1) // retained on B too
		})
	}
}

// Control across instances: a client id connecting on one instance takes over its connection
// on the other (0x8E); disconnect reaches a connection on the other instance (0x98); a user
// removed from a room on one instance loses it on the other at once.
func TestCrossInstanceControl(t *testing.T) {
	addr := redistest.Standalone(t)
	a := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = redisStore(t, []string{addr}, "ctl") })
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = redisStore(t, []string{addr}, "ctl") })

	old := mqtttest.Dial(t, "tim", mqtttest.Options{URL: tcpURL(a), ClientID: "tim-phone"})
	old.MustSubscribe("users/tim/events") // a round trip: the connection is recorded
	mqtttest.Dial(t, "tim", mqtttest.Options{URL: tcpURL(b), ClientID: "tim-phone"})
	select {
	case <-old.Lost():
	case <-time.After(mqtttest.Timeout):
		t.Fatal("connection on the other instance not taken over")
	}
	if d := old.ServerDisconnect(); d == nil || d.ReasonCode != 0x8E {
		t.Errorf("taken-over connection got %+v, want DISCONNECT 0x8E", d)
	}

	onA := mqtttest.Dial(t, "una", mqtttest.Options{URL: tcpURL(a), ClientID: "una-a"})
	onA.MustSubscribe("users/una/events") // a round trip: the connection is recorded
	onB := mqtttest.Dial(t, "una", mqtttest.Options{URL: tcpURL(b), ClientID: "una-b"})
	onB.MustRPC("disconnect", map[string]any{"clientId": "una-a"}, nil)
	select {
	case <-onA.Lost():
	case <-time.After(mqtttest.Timeout):
		t.Fatal("disconnect did not reach the other instance")
	}

	owner := mqtttest.Dial(t, "ori", mqtttest.Options{URL: tcpURL(a)})
	owner.MustRPC("roomCreate", map[string]any{"room": "split"}, nil)
	owner.MustSubscribe("rooms/split")
	victim := mqtttest.Dial(t, "vera", mqtttest.Options{URL: tcpURL(b)})
	victim.MustSubscribe("rooms/split", "users/vera/events")
	owner.MustRPC("roomAddToList", roomArgs("split", "blacklist", "vera"), nil)
	victim.ExpectEvent("users/vera/events", "roomAccessRemoved")
	mqtttest.WaitFor(t, mqtttest.Timeout, "the subscription on the other instance to end", func() bool {
		subs, _ := b.Subscriptions(victim.ID)
		for _, s := range subs {
			if s == "rooms/split" {
				return false
			}
		}
		return true
	})
	owner.Publish("rooms/split", 1, text("after"), nil)
	owner.Expect("rooms/split")
	victim.MustRPC("listOwnSockets", map[string]any{}, nil)
	victim.ExpectNone("rooms/split", 0)
}
