package broker_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/wire"
)

// A subscription to presence/+ gets the retained presence of every user online, however many
// more they are than limits.max_pending_writes: Mochi would queue them in a channel of that
// size and drop the rest.
func TestRetainedBeyondPendingWrites(t *testing.T) {
	const users = 40
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.MaxPendingWrites = 8 })
	first := mqtttest.Dial(t, "first", mqtttest.Options{URL: tcpURL(b)})
	first.MustSubscribe("presence/+")
	for i := range users {
		u := fmt.Sprintf("user%d", i)
		mqtttest.Dial(t, u, mqtttest.Options{URL: tcpURL(b)})
		expectPresence(t, first, u, true, 1) // retained from here on
	}

	late := mqtttest.Dial(t, "late", mqtttest.Options{URL: tcpURL(b)})
	late.MustSubscribe("presence/+")
	seen := map[string]bool{}
	for len(seen) < users {
		p := late.Expect("presence/+")
		var pr wire.Presence
		if err := json.Unmarshal(p.Payload, &pr); err != nil {
			t.Fatalf("presence %s: %v", p.Payload, err)
		}
		if !p.Retain {
			t.Fatalf("presence of %s without the RETAIN flag", pr.User)
		}
		if pr.User != "first" && pr.User != "late" {
			seen[pr.User] = true
		}
	}
}

// Retained messages on SUBSCRIBE follow Retain Handling [MQTT-3.3.1-9] [MQTT-3.3.1-10]
// [MQTT-3.3.1-11] and carry the RETAIN flag without Retain As Published, as with Mochi.
func TestRetainHandling(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	pub := mqtttest.Dial(t, "pub", mqtttest.Options{URL: tcpURL(b)})
	pubRetained(t, pub, "config/x", "v1")
	sub := mqtttest.Dial(t, "sub", mqtttest.Options{URL: tcpURL(b)})
	got := func(filter string, handling byte) []string {
		t.Helper()
		sub.Subscribe(nil, paho.SubscribeOptions{Topic: filter, QoS: 1, RetainHandling: handling})
		sub.MustRPC("listOwnSockets", map[string]any{}, nil) // the outbox writes its answer after them
		var out []string
		for {
			p, ok := sub.TryNext("config/#")
			if !ok {
				return out
			}
			if !p.Retain {
				t.Errorf("%s: retained message without the RETAIN flag", filter)
			}
			out = append(out, string(p.Payload))
		}
	}
	for _, step := range []struct {
		filter   string
		handling byte
		want     int
	}{
		{"config/x", 0, 1}, // always
		{"config/x", 1, 0}, // only for a new subscription
		{"config/x", 0, 1},
		{"config/x", 2, 0}, // never
		{"config/+", 1, 1}, // new
	} {
		if n := len(got(step.filter, step.handling)); n != step.want {
			t.Fatalf("subscribe %s with Retain Handling %d: %d retained messages, want %d", step.filter, step.handling, n, step.want)
		}
	}
}
