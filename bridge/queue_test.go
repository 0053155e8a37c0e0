package bridge_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/roomq/roomq/bridge"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/netproxy"
)

// TestTopicsFarSideDown checks that a far side that is down never holds up local traffic:
// publishes here are acknowledged at once, the bridge keeps a bounded queue and drops (and
// counts) the rest, and what it kept arrives, in order, when the far side is back.
func TestTopicsFarSideDown(t *testing.T) {
	far := mqtttest.StartBroker(t, nil)
	edge := mqtttest.StartBroker(t, nil)
	px := netproxy.New(t, far.MQTTAddr())
	const queue = 5
	b := runBridge(t, bridge.Options{
		Config: bridge.Config{
			Name: "far", LocalName: "edge", URL: px.URL(), User: "edge-gw", QueueSize: queue,
			Topics:       []bridge.TopicMapping{{Local: "sensors", Remote: "site1/sensors", Direction: bridge.Out, QoS: 1}},
			ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
		},
		Local: bridge.LocalMQTT{URL: "tcp://" + edge.MQTTAddr(), User: "bridge"},
	})
	mqtttest.WaitFor(t, waitTimeout, "topics ready", func() bool { return b.Status().TopicsReady })
	farSub := mqtttest.Dial(t, "ops", mqtttest.Options{URL: "tcp://" + far.MQTTAddr()})
	farSub.MustSubscribe("site1/sensors/#")
	edgePub := mqtttest.Dial(t, "dev", mqtttest.Options{URL: "tcp://" + edge.MQTTAddr()})
	edgePub.Publish("sensors/first", 1, []byte("x"), nil)
	farSub.Expect("site1/sensors/#")

	px.Pause()
	mqtttest.WaitFor(t, waitTimeout, "bridge disconnected", func() bool { return !b.Status().Connected })
	const n = 20
	for i := range n {
		if code := edgePub.Publish("sensors/r", 1, []byte(strconv.Itoa(i)), nil); code != 0 {
			t.Fatalf("publish %d here: reason %#x", i, code)
		}
	}
	// The queue holds `queue` messages and the sender one more at most: the rest is dropped.
	mqtttest.WaitFor(t, waitTimeout, "drops counted", func() bool { return b.Status().Dropped >= n-queue-1 })
	px.Resume()
	mqtttest.WaitFor(t, waitTimeout, "queue sent", func() bool {
		s := b.Status()
		return s.Connected && s.Queued == 0 && s.MessagesOut+s.Dropped >= n+1
	})
	edgePub.Publish("sensors/end", 1, []byte("end"), nil)
	var got []int
	for {
		p := farSub.Expect("site1/sensors/#")
		if p.Topic == "site1/sensors/end" {
			break
		}
		if p.Topic == "site1/sensors/first" {
			continue // sent again if its PUBACK was lost with the link: at least once
		}
		i, err := strconv.Atoi(string(p.Payload))
		if err != nil || p.Topic != "site1/sensors/r" {
			t.Fatalf("unexpected %s %q", p.Topic, p.Payload)
		}
		if len(got) > 0 && i <= got[len(got)-1] {
			t.Fatalf("out of order: %v then %d", got, i)
		}
		got = append(got, i)
	}
	dropped := b.Status().Dropped
	if uint64(len(got))+dropped != n || len(got) < queue || got[0] != 0 {
		t.Fatalf("received %v and dropped %d of %d (queue %d)", got, dropped, n, queue)
	}
}
