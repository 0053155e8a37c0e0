package bridge_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/roomq/roomq/bridge"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/wire"
)

// startMosquitto starts a Mosquitto broker (Debian package mosquitto) on a free loopback port
// and returns its URL. It skips the test when mosquitto is missing, unless
// ROOMQ_TEST_MOSQUITTO is set (scripts/test sets it), which makes it fail instead.
func startMosquitto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr == nil {
			bin, err = "/usr/sbin/mosquitto", nil
		}
	}
	if err != nil {
		if os.Getenv("ROOMQ_TEST_MOSQUITTO") != "" {
			t.Fatalf("mosquitto not found (ROOMQ_TEST_MOSQUITTO is set): %v", err)
		}
		t.Skip("mosquitto not installed (apt-get install mosquitto)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n", port), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	if os.Getenv("ROOMQ_TEST_LOG") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	mqtttest.WaitFor(t, waitTimeout, "mosquitto listening", func() bool {
		select {
		case <-exited:
			t.Fatalf("mosquitto exited")
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
	return "tcp://" + addr
}

// TestTopicsWithMosquitto bridges a prefix of plain topics both ways with Mosquitto: each
// side gets the other's messages under its own prefix, with origin-broker, once.
func TestTopicsWithMosquitto(t *testing.T) {
	mosq := startMosquitto(t)
	edge := mqtttest.StartBroker(t, nil)
	edgeURL := "tcp://" + edge.MQTTAddr()
	b := runBridge(t, bridge.Options{
		Config: bridge.Config{
			Name: "hub", LocalName: "edge", URL: mosq, ClientID: "edge-bridge",
			Topics: []bridge.TopicMapping{{Local: "sensors", Remote: "site1/sensors", Direction: bridge.Both, QoS: 1}},
		},
		Local: bridge.LocalMQTT{URL: edgeURL, User: "bridge"},
	})
	mqtttest.WaitFor(t, waitTimeout, "topics subscribed on both sides", func() bool { return b.Status().TopicsReady })

	hubSub := mqtttest.Dial(t, "hubsub", mqtttest.Options{URL: mosq})
	hubSub.MustSubscribe("site1/sensors/#")
	hubPub := mqtttest.Dial(t, "hubpub", mqtttest.Options{URL: mosq})
	edgeSub := mqtttest.Dial(t, "edgesub", mqtttest.Options{URL: edgeURL})
	edgeSub.MustSubscribe("sensors/#")
	edgePub := mqtttest.Dial(t, "edgepub", mqtttest.Options{URL: edgeURL})

	// Out: edge -> Mosquitto, prefix rewritten, origin added.
	if code := edgePub.Publish("sensors/t1", 1, []byte("21.5"), nil); code != 0 {
		t.Fatalf("publish on edge: reason %#x", code)
	}
	p := hubSub.Expect("site1/sensors/#")
	if p.Topic != "site1/sensors/t1" || string(p.Payload) != "21.5" || mqtttest.UserProperty(p, wire.PropOriginBroker) != "edge" {
		t.Fatalf("Mosquitto got %s %q origin %q", p.Topic, p.Payload, mqtttest.UserProperty(p, wire.PropOriginBroker))
	}
	if p := edgeSub.Expect("sensors/#"); p.Topic != "sensors/t1" {
		t.Fatalf("edge subscriber got %s first", p.Topic)
	}

	// In: Mosquitto -> edge.
	if code := hubPub.Publish("site1/sensors/cmd", 1, []byte("on"), nil); code != 0 {
		t.Fatalf("publish on Mosquitto: reason %#x", code)
	}
	p = edgeSub.Expect("sensors/#")
	if p.Topic != "sensors/cmd" || string(p.Payload) != "on" || mqtttest.UserProperty(p, wire.PropOriginBroker) != "hub" {
		t.Fatalf("edge got %s %q origin %q", p.Topic, p.Payload, mqtttest.UserProperty(p, wire.PropOriginBroker))
	}
	if p := hubSub.Expect("site1/sensors/#"); p.Topic != "site1/sensors/cmd" {
		t.Fatalf("Mosquitto subscriber got %s", p.Topic)
	}

	// A marker from each side: once it arrived, an echo of the messages before it would have.
	edgePub.Publish("sensors/end", 1, []byte("x"), nil)
	hubPub.Publish("site1/sensors/end", 1, []byte("x"), nil)
	for _, c := range []struct {
		sub    *mqtttest.Client
		filter string
		want   []string
	}{
		{hubSub, "site1/sensors/#", []string{"site1/sensors/end", "site1/sensors/end"}},
		{edgeSub, "sensors/#", []string{"sensors/end", "sensors/end"}},
	} {
		for _, want := range c.want {
			if p := c.sub.Expect(c.filter); p.Topic != want {
				t.Fatalf("%s got %s (%q), want %s: an echo", c.sub.ID, p.Topic, p.Payload, want)
			}
		}
		if p, ok := c.sub.TryNext(c.filter); ok {
			t.Fatalf("%s got %s (%q) after the markers", c.sub.ID, p.Topic, p.Payload)
		}
	}
	mqtttest.WaitFor(t, waitTimeout, "bridge counted 2 in and 2 out", func() bool {
		s := b.Status()
		return s.MessagesOut >= 2 && s.MessagesIn >= 2
	})
	if s := b.Status(); s.MessagesOut != 2 || s.MessagesIn != 2 || s.Dropped != 0 {
		t.Errorf("status = %+v, want 2 out, 2 in, none dropped", s)
	}
}
