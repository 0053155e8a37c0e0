package mqtttest

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/roomq/roomq/wire"
)

// V3Client is an MQTT 3.1.1 client (paho.mqtt.golang) that records what it receives.
type V3Client struct {
	t     testing.TB
	User  string
	ID    string
	Paho  mqtt3.Client
	msgs  chan mqtt3.Message
	mu    sync.Mutex
	queue []mqtt3.Message
}

// DialV3 connects user over MQTT 3.1.1 to url (tcp://host:port or ws://host:port/mqtt) and
// returns the client and the CONNECT error (nil on success). willTopic, when not empty, sets a
// will.
func DialV3(t testing.TB, url, user, willTopic string) (*V3Client, error) {
	t.Helper()
	c := &V3Client{t: t, User: user, ID: fmt.Sprintf("%s-v3-%d", user, clientSeq.Add(1)), msgs: make(chan mqtt3.Message, 100000)}
	o := mqtt3.NewClientOptions().
		AddBroker(url).
		SetClientID(c.ID).
		SetUsername(user).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetConnectTimeout(Timeout).
		SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) { c.msgs <- m })
	if willTopic != "" {
		o.SetWill(willTopic, `{"textMessage":"bye"}`, 1, false)
	}
	c.Paho = mqtt3.NewClient(o)
	tok := c.Paho.Connect()
	if !tok.WaitTimeout(Timeout) {
		t.Fatalf("v3 connect %s: timeout", user)
	}
	if err := tok.Error(); err != nil {
		return c, err
	}
	t.Cleanup(func() { c.Paho.Disconnect(100) })
	return c, nil
}

// Subscribe subscribes to filter at QoS 1 and returns the granted code (0x80 when refused).
func (c *V3Client) Subscribe(filter string) byte {
	c.t.Helper()
	tok := c.Paho.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(Timeout) {
		c.t.Fatalf("v3 subscribe %s: timeout", filter)
	}
	st, ok := tok.(*mqtt3.SubscribeToken)
	if !ok {
		c.t.Fatalf("v3 subscribe: unexpected token %T", tok)
	}
	return st.Result()[filter]
}

// Publish publishes at qos and waits for the acknowledgement.
func (c *V3Client) Publish(topic string, qos byte, payload []byte) {
	c.t.Helper()
	tok := c.Paho.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(Timeout) {
		c.t.Fatalf("v3 publish %s: timeout", topic)
	}
	if err := tok.Error(); err != nil {
		c.t.Fatalf("v3 publish %s: %v", topic, err)
	}
}

// Expect returns the next message whose topic matches filter.
func (c *V3Client) Expect(filter string) mqtt3.Message {
	c.t.Helper()
	c.mu.Lock()
	for i, m := range c.queue {
		if wire.MatchTopic(filter, m.Topic()) {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			c.mu.Unlock()
			return m
		}
	}
	c.mu.Unlock()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		select {
		case m := <-c.msgs:
			if wire.MatchTopic(filter, m.Topic()) {
				return m
			}
			c.mu.Lock()
			c.queue = append(c.queue, m)
			c.mu.Unlock()
		case <-timer.C:
			c.t.Fatalf("%s: no message on %s within %v", c.ID, filter, Timeout)
			return nil
		}
	}
}

// RPC calls a command with the v3.1.1 payload envelope and returns the decoded response
// object (result or error, and the echoed correlationData).
func (c *V3Client) RPC(command string, args any, correlation string) map[string]json.RawMessage {
	c.t.Helper()
	replies := wire.UserRepliesPrefix(c.User) + c.ID
	if !strings.HasPrefix(replies, "users/") {
		c.t.Fatalf("bad replies topic %s", replies)
	}
	if code := c.Subscribe(replies); code >= 0x80 {
		c.t.Fatalf("v3 subscribe %s refused", replies)
	}
	env, _ := json.Marshal(map[string]any{"args": args, "responseTopic": replies, "correlationData": correlation})
	c.Publish(wire.RPCPrefix+command, 1, env)
	m := c.Expect(replies)
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(m.Payload(), &resp); err != nil {
		c.t.Fatalf("v3 RPC %s: bad response %s", command, m.Payload())
	}
	return resp
}
