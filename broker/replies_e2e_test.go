package broker_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/store"
)

// request publishes a v5 request to topic with a response topic and correlation data, and
// returns the PUBACK reason code.
func request(c *mqtttest.Client, topic, responseTopic, correlation string) byte {
	return c.Publish(topic, 1, []byte(`{"do":"reboot"}`), &paho.PublishProperties{ResponseTopic: responseTopic, CorrelationData: []byte(correlation)})
}

// A device that receives a request may answer it once on the response topic under the
// requester's users/{user}/replies/, from another instance too; a second answer, an answer on
// another topic and a request whose response topic is another user's are refused (0x87).
func TestDeviceReplyRights(t *testing.T) {
	st := store.NewMemory()
	a := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st })
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st })
	dev := mqtttest.Dial(t, "dev1", mqtttest.Options{URL: tcpURL(b)})
	dev.MustSubscribe("devices/dev1/rpc/#")
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(a), ClientID: "alice-1"})
	replies := "users/alice/replies/alice-1/"
	alice.MustSubscribe(replies + "#")
	waitRoute(t, alice, dev, "devices/dev1/rpc/probe", "devices/dev1/rpc/#")

	if code := request(alice, "devices/dev1/rpc/reboot", replies+"r1", "c1"); code != 0 {
		t.Fatalf("request: PUBACK %#x", code)
	}
	req := dev.Expect("devices/dev1/rpc/#")
	if req.Properties.ResponseTopic != replies+"r1" || string(req.Properties.CorrelationData) != "c1" {
		t.Fatalf("request delivered with %+v", req.Properties)
	}
	answer := &paho.PublishProperties{CorrelationData: req.Properties.CorrelationData}
	if code := dev.Publish(replies+"r1", 1, []byte(`{"result":"ok"}`), answer); code != 0 {
		t.Fatalf("reply: PUBACK %#x, want success", code)
	}
	if p := alice.Expect(replies + "#"); string(p.Properties.CorrelationData) != "c1" || string(p.Payload) != `{"result":"ok"}` {
		t.Errorf("requester got %q with %+v", p.Payload, p.Properties)
	}
	if code := dev.Publish(replies+"r1", 1, []byte(`{"result":"again"}`), answer); code != 0x87 {
		t.Errorf("second reply: PUBACK %#x, want 0x87", code)
	}
	if code := dev.Publish(replies+"forged", 1, []byte(`{}`), nil); code != 0x87 {
		t.Errorf("reply on a topic without a request: PUBACK %#x, want 0x87", code)
	}
	if code := request(alice, "devices/dev1/rpc/reboot", "users/bob/replies/x", "c2"); code != 0x87 {
		t.Errorf("request answered to another user's topic: PUBACK %#x, want 0x87", code)
	}
	if code := alice.Publish(replies+"r1", 1, []byte(`{}`), nil); code != 0x87 {
		t.Errorf("the requester answering itself: PUBACK %#x, want 0x87", code)
	}
	alice.ExpectNone(replies+"#", 0)
}

// An answer after the reply timeout is refused.
func TestDeviceLateReply(t *testing.T) {
	const timeout = 200 * time.Millisecond
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.ReplyTimeout = timeout })
	dev := mqtttest.Dial(t, "dev1", mqtttest.Options{URL: tcpURL(b)})
	dev.MustSubscribe("devices/dev1/rpc/#")
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b), ClientID: "alice-1"})
	request(alice, "devices/dev1/rpc/reboot", "users/alice/replies/alice-1/late", "c")
	dev.Expect("devices/dev1/rpc/#")
	time.Sleep(2 * timeout) // the behaviour under test is the passing of time
	if code := dev.Publish("users/alice/replies/alice-1/late", 1, []byte(`{}`), nil); code != 0x87 {
		t.Errorf("late reply: PUBACK %#x, want 0x87", code)
	}
}

// A v5 device and a v3.1.1 device call each other: the v3.1.1 side uses the payload envelope
// of broker RPC, the v5 side properties.
func TestDeviceRPCv5v3(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	v5 := mqtttest.Dial(t, "ann", mqtttest.Options{URL: tcpURL(b), ClientID: "ann-1"})
	v5.MustSubscribe("users/ann/replies/ann-1/#", "devices/ann/rpc/#")
	v3, err := mqtttest.DialV3(t, tcpURL(b), "ben", "")
	if err != nil {
		t.Fatal(err)
	}
	v3.Subscribe("devices/ben/rpc/#")
	v3.Subscribe("users/ben/replies/#")

	// v5 calls v3.1.1.
	request(v5, "devices/ben/rpc/status", "users/ann/replies/ann-1/s", "k5")
	var env struct {
		Args            json.RawMessage `json:"args"`
		ResponseTopic   string          `json:"responseTopic"`
		CorrelationData string          `json:"correlationData"`
	}
	if err := json.Unmarshal(v3.Expect("devices/ben/rpc/#").Payload(), &env); err != nil || env.ResponseTopic != "users/ann/replies/ann-1/s" || env.CorrelationData != "k5" || string(env.Args) != `{"do":"reboot"}` {
		t.Fatalf("v3.1.1 device got %+v (%v)", env, err)
	}
	v3.Publish(env.ResponseTopic, 1, []byte(`{"result":"fine","correlationData":"k5"}`))
	if p := v5.Expect("users/ann/replies/ann-1/#"); string(p.Properties.CorrelationData) != "k5" {
		t.Errorf("v5 caller got %q with correlation %q", p.Payload, p.Properties.CorrelationData)
	}

	// v3.1.1 calls v5.
	v3.Publish("devices/ann/rpc/status", 1, []byte(`{"args":{"verbose":true},"responseTopic":"users/ben/replies/b1","correlationData":"k3"}`))
	req := v5.Expect("devices/ann/rpc/#")
	if string(req.Payload) != `{"verbose":true}` || req.Properties.ResponseTopic != "users/ben/replies/b1" || string(req.Properties.CorrelationData) != "k3" {
		t.Fatalf("v5 device got %q with %+v", req.Payload, req.Properties)
	}
	if code := v5.Publish(req.Properties.ResponseTopic, 1, []byte(`{"result":"up"}`), &paho.PublishProperties{CorrelationData: req.Properties.CorrelationData}); code != 0 {
		t.Fatalf("v5 reply: PUBACK %#x", code)
	}
	var resp struct {
		Result          string `json:"result"`
		CorrelationData string `json:"correlationData"`
	}
	if err := json.Unmarshal(v3.Expect("users/ben/replies/#").Payload(), &resp); err != nil || resp.Result != "up" || resp.CorrelationData != "k3" {
		t.Errorf("v3.1.1 caller got %+v (%v)", resp, err)
	}
}
