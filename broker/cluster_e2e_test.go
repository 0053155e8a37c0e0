package broker_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
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
	st := store.NewMemory()
	bs := startInstances(t, 2, st)
	var subs []*mqtttest.Client
	for i, b := range bs {
		s := mqtttest.Dial(t, fmt.Sprintf("sub%d", i), mqtttest.Options{URL: tcpURL(b)})
		s.MustSubscribe("rooms/general")
		subs = append(subs, s)
	}
	const each = 60
	var wg sync.WaitGroup
	for i, b := range bs {
		for j := 0; j < 2; j++ {
			p := mqtttest.Dial(t, fmt.Sprintf("pub%d-%d", i, j), mqtttest.Options{URL: wsURL(b)})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < each; k++ {
					p.Publish("rooms/general", byte(k%2), text("x"), nil)
				}
			}()
		}
	}
	wg.Wait()
	total := uint64(len(bs) * 2 * each)
	for _, s := range subs {
		for want := uint64(1); want <= total; want++ {
			if m := decodeRoomMsg(t, s.Expect("rooms/general")); m.ID != want {
				t.Fatalf("%s: got id %d, want %d", s.ID, m.ID, want)
			}
		}
	}
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
