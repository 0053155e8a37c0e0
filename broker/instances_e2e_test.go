package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/devices"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/redistest"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// sharedStores returns, for each case, n stores on the same state: one memory store shared by
// all, or n clients of one Redis server.
var sharedStores = []struct {
	name   string
	stores func(t *testing.T, n int) []store.Store
}{
	{"memory", func(t *testing.T, n int) []store.Store {
		st := store.NewMemory()
		out := make([]store.Store, n)
		for i := range out {
			out[i] = st
		}
		return out
	}},
	{"redis", func(t *testing.T, n int) []store.Store {
		addr := redistest.Standalone(t)
		out := make([]store.Store, n)
		for i := range out {
			out[i] = redisStore(t, []string{addr}, "inst")
		}
		return out
	}},
}

// testFailureTimeout is the failure timeout of the instances under test.
const testFailureTimeout = 1500 * time.Millisecond

// An instance that stops heartbeating (here a "ghost" whose connection is written into the
// store directly) is cleaned up by the survivors: within the failure timeout they publish its
// connection's will and the user's presence, and end its room membership with userLeft. With
// two survivors each message comes once.
func TestDeadInstanceCleanedUp(t *testing.T) {
	for _, tc := range sharedStores {
		t.Run(tc.name, func(t *testing.T) {
			stores := tc.stores(t, 2)
			var bs []*broker.Broker
			for _, st := range stores {
				bs = append(bs, mqtttest.StartBroker(t, func(o *broker.Options) {
					o.Store, o.FailureTimeout = st, testFailureTimeout
				}))
			}
			var watchers []*mqtttest.Client
			for i, b := range bs {
				w := mqtttest.Dial(t, fmt.Sprintf("watcher%d", i), mqtttest.Options{URL: tcpURL(b)})
				w.MustSubscribe("devices/+/status", "rooms/general/events")
				watchers = append(watchers, w)
			}

			// The ghost instance holds dora's connection, joined to general, with a will.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st := stores[0]
			will, _ := json.Marshal(devices.Will{ClientID: "dora-1", User: "dora", Topic: "devices/dora-1/status", Payload: []byte("lost"), QoS: 1})
			must(t, func() error { _, err := st.Heartbeat(ctx, "ghost", time.Hour); return err })
			must(t, func() error {
				_, err := st.AddConnection(ctx, store.Connection{ClientID: "dora-1", Session: "s1", User: "dora", Instance: "ghost", Will: will})
				return err
			})
			must(t, func() error { _, _, err := st.Join(ctx, "general", "dora", "dora-1", 1); return err })
			// Its last heartbeat: from now on it is silent.
			must(t, func() error { _, err := st.Heartbeat(ctx, "ghost", 10*time.Millisecond); return err })
			silent := time.Now()

			for _, w := range watchers {
				if p := w.Expect("devices/+/status"); p.Topic != "devices/dora-1/status" || string(p.Payload) != "lost" {
					t.Errorf("%s: got %s %q, want the will", w.User, p.Topic, p.Payload)
				}
				if ev := w.ExpectEvent("rooms/general/events", "userLeft"); ev["user"] != "dora" {
					t.Errorf("%s: userLeft = %v", w.User, ev)
				}
			}
			t.Logf("cleaned up %v after the last heartbeat (failure timeout %v)", time.Since(silent), testFailureTimeout)
			late := mqtttest.Dial(t, "late", mqtttest.Options{URL: tcpURL(bs[1])})
			late.MustSubscribe("presence/dora")
			expectPresence(t, late, "dora", false, 0)
			users, err := st.RoomUsers(ctx, "general")
			if err != nil || len(users) != 0 {
				t.Errorf("room users after the cleanup = %v, %v; want none", users, err)
			}
			// Once: nothing more within another failure timeout.
			for _, w := range watchers {
				w.ExpectNone("devices/+/status", testFailureTimeout)
			}
		})
	}
}

func must(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

// An instance started after users connected elsewhere has their retained presence.
func TestLateInstanceHasPresence(t *testing.T) {
	for _, tc := range sharedStores {
		t.Run(tc.name, func(t *testing.T) {
			stores := tc.stores(t, 2)
			a := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = stores[0] })
			mqtttest.Dial(t, "early", mqtttest.Options{URL: tcpURL(a)}).MustSubscribe("users/early/events")
			gone := mqtttest.Dial(t, "gone", mqtttest.Options{URL: tcpURL(a)})
			gone.MustSubscribe("users/gone/events")
			gone.Close()
			watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(a)})
			watcher.MustSubscribe("presence/gone")
			expectPresence(t, watcher, "gone", false, 0)

			b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = stores[1] })
			late := mqtttest.Dial(t, "late", mqtttest.Options{URL: tcpURL(b)})
			late.MustSubscribe("presence/+")
			seen := map[string]wire.Presence{}
			for seen["early"].User == "" || seen["gone"].User == "" { // the others' too
				var p wire.Presence
				if err := json.Unmarshal(late.Expect("presence/+").Payload, &p); err != nil {
					t.Fatal(err)
				}
				seen[p.User] = p
			}
			if p := seen["early"]; !p.Online || p.Connections != 1 {
				t.Errorf("presence of early on the late instance = %+v", p)
			}
			if p := seen["gone"]; p.Online || p.Connections != 0 {
				t.Errorf("presence of gone on the late instance = %+v", p)
			}
		})
	}
}

// A user's connections come and go on three instances at once; when they settle, presence/{user}
// retained on every instance counts exactly the connections that are left.
func TestExactPresenceCounts(t *testing.T) {
	for _, tc := range sharedStores {
		t.Run(tc.name, func(t *testing.T) {
			bs := make([]*broker.Broker, 3)
			for i, st := range tc.stores(t, len(bs)) {
				bs[i] = mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st })
			}
			const perInstance = 4
			var mu sync.Mutex
			var conns []*mqtttest.Client
			var wg sync.WaitGroup
			for round := range 2 { // connect all, then close all but one per instance
				for i, b := range bs {
					for j := range perInstance {
						wg.Go(func() {
							if round == 0 {
								c := mqtttest.Dial(t, "pat", mqtttest.Options{URL: tcpURL(b), ClientID: fmt.Sprintf("pat-%d-%d", i, j)})
								mu.Lock()
								conns = append(conns, c)
								mu.Unlock()
							} else if c := conns[i*perInstance+j]; j > 0 {
								c.Close()
							}
						})
					}
				}
				wg.Wait()
				if round == 0 { // in instance order, for the second round
					slicesSortByID(conns)
				}
			}
			want := len(bs)
			for i, b := range bs {
				mqtttest.WaitFor(t, 2*mqtttest.Timeout, fmt.Sprintf("presence on instance %d to count %d", i, want), func() bool {
					w := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(b)})
					defer w.Close()
					w.MustSubscribe("presence/pat")
					var p wire.Presence
					return json.Unmarshal(w.Expect("presence/pat").Payload, &p) == nil && p.Online && p.Connections == want
				})
			}
		})
	}
}

func slicesSortByID(cs []*mqtttest.Client) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].ID < cs[j-1].ID; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// What a client publishes to a plain topic on one instance reaches the subscribers on the
// others, in order, with its properties; a retained message is found by a later subscriber on
// any instance; a subscription made on one instance gets messages from the other at once (the
// SUBACK comes after the route is recorded).
func TestCrossInstancePlainTopics(t *testing.T) {
	for _, tc := range sharedStores {
		t.Run(tc.name, func(t *testing.T) {
			stores := tc.stores(t, 2)
			a := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = stores[0] })
			b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = stores[1] })
			sub := mqtttest.Dial(t, "sam", mqtttest.Options{URL: tcpURL(b)})
			sub.MustSubscribe("devices/+/telemetry")
			pub := mqtttest.Dial(t, "pia", mqtttest.Options{URL: wsURL(a)})
			waitRoute(t, pub, sub, "devices/probe/telemetry", "devices/+/telemetry")
			const n = 50
			for i := range n {
				props := &paho.PublishProperties{ResponseTopic: "devices/d1/answers", CorrelationData: []byte{byte(i)}, User: paho.UserProperties{{Key: "seq", Value: fmt.Sprint(i)}}}
				pub.Publish("devices/d1/telemetry", byte(i%2), fmt.Appendf(nil, "t%d", i), props)
			}
			for i := range n {
				p := sub.Expect("devices/+/telemetry")
				if string(p.Payload) != fmt.Sprintf("t%d", i) {
					t.Fatalf("got %q, want t%d", p.Payload, i)
				}
				if p.Properties == nil || p.Properties.ResponseTopic != "devices/d1/answers" || !bytes.Equal(p.Properties.CorrelationData, []byte{byte(i)}) || mqtttest.UserProperty(p, "seq") != fmt.Sprint(i) {
					t.Fatalf("message %d lost its properties: %+v", i, p.Properties)
				}
			}

			pub.Publish("devices/d1/config", 1, []byte("v1"), &paho.PublishProperties{})
			pubRetained(t, pub, "devices/d1/config", "v2")
			late := mqtttest.Dial(t, "lou", mqtttest.Options{URL: tcpURL(b)})
			mqtttest.WaitFor(t, mqtttest.Timeout, "the retained message on the other instance", func() bool {
				c := mqtttest.Dial(t, "lou", mqtttest.Options{URL: tcpURL(b)})
				defer c.Close()
				c.MustSubscribe("devices/+/config")
				p, ok := c.TryNext("devices/+/config")
				return ok && string(p.Payload) == "v2"
			})

			// Routes travel between instances as fast as the messages: a responder on B answers
			// a request from A that came after A's subscription to the answers, and the answer
			// finds its way back.
			responder := mqtttest.Dial(t, "rex", mqtttest.Options{URL: tcpURL(b)})
			responder.MustSubscribe("jobs/+")
			requester := mqtttest.Dial(t, "ria", mqtttest.Options{URL: tcpURL(a)})
			waitRoute(t, requester, responder, "jobs/probe", "jobs/+")
			for i := range 10 {
				answers := fmt.Sprintf("answers/ria/%d", i)
				requester.MustSubscribe(answers)
				requester.Publish("jobs/work", 1, []byte(answers), nil)
				req := responder.Expect("jobs/+")
				responder.Publish(string(req.Payload), 1, []byte("done"), nil)
				if p := requester.Expect(answers); string(p.Payload) != "done" {
					t.Fatalf("answer %d: %q", i, p.Payload)
				}
			}
			_ = late
		})
	}
}

// waitRoute waits until what pub publishes to topic reaches sub's filter on another instance:
// a subscription's route reaches the other instances a moment after its SUBACK. It leaves
// nothing of its probes unread.
func waitRoute(t *testing.T, pub, sub *mqtttest.Client, topic, filter string) {
	t.Helper()
	mqtttest.WaitFor(t, mqtttest.Timeout, "the route of "+filter+" on the other instance", func() bool {
		pub.Publish(topic, 0, []byte("probe"), nil)
		_, ok := sub.TryNext(filter)
		return ok
	})
	pub.Publish(topic, 1, []byte("last probe"), nil)
	for string(sub.Expect(filter).Payload) != "last probe" {
	}
}

// pubRetained publishes a retained message at QoS 1.
func pubRetained(t *testing.T, c *mqtttest.Client, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if _, err := c.Paho.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(payload)}); err != nil {
		t.Fatalf("publish retained: %v", err)
	}
}

// retainedOn returns the retained message of topic on an instance, as a new subscriber gets
// it ("" for none). The connection's outbox queues a SUBSCRIBE's retained messages before the
// SUBACK is written, and writes in order, so once the answer of an RPC sent after the SUBACK
// came, the retained message, if any, has come too.
func retainedOn(t *testing.T, b *broker.Broker, topic string) string {
	t.Helper()
	c := mqtttest.Dial(t, "reader", mqtttest.Options{URL: tcpURL(b)})
	defer c.Close()
	c.MustSubscribe(topic)
	c.MustRPC("listOwnSockets", map[string]any{}, nil)
	if p, ok := c.TryNext(topic); ok {
		return string(p.Payload)
	}
	return ""
}

// Retained messages of plain topics are kept in the store: an instance started later has them,
// a removal reaches every instance, and instances that get retained messages of one topic
// from two publishers at once end up retaining the same one.
func TestRetainedAcrossInstances(t *testing.T) {
	for _, tc := range sharedStores {
		t.Run(tc.name, func(t *testing.T) {
			stores := tc.stores(t, 2)
			a := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = stores[0] })
			pa := mqtttest.Dial(t, "pia", mqtttest.Options{URL: tcpURL(a)})
			pubRetained(t, pa, "config/d1", "v1")

			b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = stores[1] })
			if got := retainedOn(t, b, "config/d1"); got != "v1" {
				t.Fatalf("retained on the instance started later = %q, want v1", got)
			}
			pb := mqtttest.Dial(t, "pete", mqtttest.Options{URL: tcpURL(b)})
			pubRetained(t, pb, "config/d1", "")
			mqtttest.WaitFor(t, mqtttest.Timeout, "the removal on the other instance", func() bool {
				return retainedOn(t, a, "config/d1") == ""
			})

			var wg sync.WaitGroup
			for _, p := range []*mqtttest.Client{pa, pb} {
				wg.Go(func() {
					for i := range 20 {
						pubRetained(t, p, "config/d2", fmt.Sprintf("%s %d", p.User, i))
					}
				})
			}
			wg.Wait()
			mqtttest.WaitFor(t, mqtttest.Timeout, "both instances to retain the same message", func() bool {
				ra, rb := retainedOn(t, a, "config/d2"), retainedOn(t, b, "config/d2")
				return ra != "" && ra == rb
			})
		})
	}
}

// A persistent session that is offline gets, when it comes back, what was published for it
// meanwhile (QoS 1), whether on its own instance or on another.
func TestOfflineSessionQueue(t *testing.T) {
	st := store.NewMemory()
	a := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st })
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st })
	persistent := func(cp *paho.Connect) {
		cp.CleanStart = false
		expiry := uint32(300)
		cp.Properties.SessionExpiryInterval = &expiry
	}
	for _, from := range []*broker.Broker{b, a} {
		dev := mqtttest.Dial(t, "dev", mqtttest.Options{URL: tcpURL(b), ClientID: "dev-7", Connect: persistent})
		dev.Subscribe(nil, paho.SubscribeOptions{Topic: "cmd/dev-7", QoS: 1})
		pub := mqtttest.Dial(t, "ops", mqtttest.Options{URL: tcpURL(from)})
		waitRoute(t, pub, dev, "cmd/dev-7", "cmd/dev-7")
		dev.Close()
		mqtttest.WaitFor(t, mqtttest.Timeout, "the session to be offline", func() bool {
			_, online := b.Subscriptions("dev-7")
			return !online
		})
		pub.Publish("cmd/dev-7", 1, []byte("reboot"), nil)
		pub.MustRPC("listOwnSockets", map[string]any{}, nil) // the forward is on its way

		back := mqtttest.Dial(t, "dev", mqtttest.Options{URL: tcpURL(b), ClientID: "dev-7", Connect: persistent})
		if p := back.Expect("cmd/dev-7"); string(p.Payload) != "reboot" {
			t.Errorf("got %q, want the message published while offline", p.Payload)
		}
		back.Close()
	}
}

// listOwnSockets lists a user's connections on every instance, each with its rooms.
func TestListOwnSocketsAcrossInstances(t *testing.T) {
	for _, tc := range sharedStores {
		t.Run(tc.name, func(t *testing.T) {
			stores := tc.stores(t, 2)
			a := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = stores[0] })
			b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = stores[1] })
			onA := mqtttest.Dial(t, "una", mqtttest.Options{URL: tcpURL(a), ClientID: "una-phone"})
			onA.MustSubscribe("rooms/general")
			mqtttest.Dial(t, "una", mqtttest.Options{URL: wsURL(b), ClientID: "una-laptop"}).MustSubscribe("users/una/events")
			var got map[string][]string
			onA.MustRPC("listOwnSockets", map[string]any{}, &got)
			want := map[string][]string{"una-phone": {"general"}, "una-laptop": {}}
			if len(got) != 2 || len(got["una-phone"]) != 1 || got["una-phone"][0] != "general" || got["una-laptop"] == nil || len(got["una-laptop"]) != 0 {
				t.Errorf("listOwnSockets = %v, want %v", got, want)
			}
		})
	}
}

// An instance that shuts down gracefully leaves nothing to clean up: the others see its users
// leave at once, and nobody takes it for dead afterwards.
func TestGracefulShutdownAcrossInstances(t *testing.T) {
	for _, tc := range sharedStores {
		t.Run(tc.name, func(t *testing.T) {
			stores := tc.stores(t, 2)
			a := mqtttest.StartBroker(t, func(o *broker.Options) {
				o.Store, o.FailureTimeout = stores[0], testFailureTimeout
			})
			b := mqtttest.StartBroker(t, func(o *broker.Options) {
				o.Store, o.FailureTimeout = stores[1], testFailureTimeout
			})
			w := mqtttest.Dial(t, "wes", mqtttest.Options{URL: tcpURL(b)})
			w.MustSubscribe("presence/dora", "rooms/general/events")
			mqtttest.Dial(t, "dora", mqtttest.Options{URL: tcpURL(a)}).MustSubscribe("rooms/general")
			expectPresence(t, w, "dora", true, 1)
			w.ExpectEvent("rooms/general/events", "userJoined")

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			expectPresence(t, w, "dora", false, 0)
			if ev := w.ExpectEvent("rooms/general/events", "userLeft"); ev["user"] != "dora" {
				t.Errorf("userLeft = %v", ev)
			}
			routes, err := stores[1].Routes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(routes) != 1 {
				t.Errorf("instances after the shutdown: %v, want only the one left", routes)
			}
		})
	}
}
