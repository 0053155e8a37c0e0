package mqtttest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/roomq/roomq/internal/wsnet"
	"github.com/roomq/roomq/wire"
)

// Timeout is how long the helpers wait for an expected packet.
const Timeout = 5 * time.Second

// Client is an MQTT 5 client (paho.golang) that records what it receives.
type Client struct {
	t        testing.TB
	User     string
	ID       string
	Paho     *paho.Client
	Connack  *paho.Connack
	msgs     chan *paho.Publish
	mu       sync.Mutex
	pending  []*paho.Publish
	discMu   sync.Mutex
	disc     *paho.Disconnect
	corr     atomic.Int64
	closed   atomic.Bool
	lostConn chan struct{}
	lostOnce sync.Once
}

// Options change how Dial connects.
type Options struct {
	// URL is tcp://host:port or ws://host:port/path.
	URL string
	// ClientID defaults to User plus a counter.
	ClientID string
	// Password is sent when not nil.
	Password []byte
	// Connect edits the CONNECT packet before it is sent.
	Connect func(*paho.Connect)
	// ReceiveMaximum, when non-zero, is announced in CONNECT.
	ReceiveMaximum uint16
	// NoFail makes Dial return a failed CONNACK instead of failing the test.
	NoFail bool
}

var clientSeq atomic.Int64

// DialConn opens a raw network connection to url (tcp:// or ws://).
func DialConn(t testing.TB, url string) net.Conn {
	t.Helper()
	switch {
	case strings.HasPrefix(url, "tcp://"):
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "tcp://"), Timeout)
		if err != nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		return c
	case strings.HasPrefix(url, "ws://"):
		return DialWS(t, url, http.Header{})
	}
	t.Fatalf("unknown URL scheme: %s", url)
	return nil
}

// DialWS opens an MQTT over WebSocket connection to url (ws://…) whose upgrade request
// carries header (cookies, for example), as a net.Conn of binary messages.
func DialWS(t testing.TB, url string, header http.Header) net.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: Timeout}
	ws, resp, err := d.Dial(url, header)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	_ = resp.Body.Close()
	return wsnet.Conn(ws)
}

// Dial connects user as an MQTT 5 client and fails the test if the broker refuses.
func Dial(t testing.TB, user string, o Options) *Client {
	t.Helper()
	if o.ClientID == "" {
		o.ClientID = fmt.Sprintf("%s-auto%d", user, clientSeq.Add(1))
	}
	c := &Client{t: t, User: user, ID: o.ClientID, msgs: make(chan *paho.Publish, 100000), lostConn: make(chan struct{})}
	conn := packets.NewThreadSafeConn(DialConn(t, o.URL))
	c.Paho = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			c.discMu.Lock()
			c.disc = d
			c.discMu.Unlock()
			c.lostOnce.Do(func() { close(c.lostConn) })
		},
		OnClientError: func(error) { c.lostOnce.Do(func() { close(c.lostConn) }) },
		PacketTimeout: Timeout,
	})
	cp := &paho.Connect{
		KeepAlive:    30,
		ClientID:     o.ClientID,
		CleanStart:   true,
		Username:     user,
		UsernameFlag: user != "",
		Properties:   &paho.ConnectProperties{RequestResponseInfo: true, RequestProblemInfo: true},
	}
	if o.Password != nil {
		cp.Password, cp.PasswordFlag = o.Password, true
	}
	if o.ReceiveMaximum > 0 {
		rm := o.ReceiveMaximum
		cp.Properties.ReceiveMaximum = &rm
	}
	if o.Connect != nil {
		o.Connect(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	ca, err := c.Paho.Connect(ctx, cp)
	c.Connack = ca
	if err != nil {
		if o.NoFail {
			return c
		}
		t.Fatalf("connect %s: %v (connack %+v)", user, err, ca)
	}
	t.Cleanup(c.Close)
	return c
}

// Close disconnects the client gracefully.
func (c *Client) Close() {
	if c.closed.CompareAndSwap(false, true) {
		_ = c.Paho.Disconnect(&paho.Disconnect{ReasonCode: 0})
	}
}

// Lost is closed when the connection ends other than by Close.
func (c *Client) Lost() <-chan struct{} { return c.lostConn }

// ServerDisconnect returns the DISCONNECT the server sent, if any.
func (c *Client) ServerDisconnect() *paho.Disconnect {
	c.discMu.Lock()
	defer c.discMu.Unlock()
	return c.disc
}

// Subscribe subscribes and returns the SUBACK reason codes, failing the test on a transport
// error (not on refusal codes).
func (c *Client) Subscribe(props paho.UserProperties, subs ...paho.SubscribeOptions) []byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	s := &paho.Subscribe{Subscriptions: subs}
	if props != nil {
		s.Properties = &paho.SubscribeProperties{User: props}
	}
	sa, err := c.Paho.Subscribe(ctx, s)
	if sa == nil {
		c.t.Fatalf("%s subscribe %v: %v", c.ID, subs, err)
	}
	return sa.Reasons
}

// MustSubscribe subscribes at QoS 1 to each filter and fails unless all are granted.
func (c *Client) MustSubscribe(filters ...string) {
	c.t.Helper()
	subs := make([]paho.SubscribeOptions, len(filters))
	for i, f := range filters {
		subs[i] = paho.SubscribeOptions{Topic: f, QoS: 1}
	}
	for i, code := range c.Subscribe(nil, subs...) {
		if code >= 0x80 {
			c.t.Fatalf("%s subscribe %s: refused with 0x%02x", c.ID, filters[i], code)
		}
	}
}

// Publish publishes and returns the PUBACK reason code (0 for QoS 0).
func (c *Client) Publish(topic string, qos byte, payload []byte, props *paho.PublishProperties) byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	pr, err := c.Paho.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: payload, Properties: props})
	if pr == nil {
		if err != nil {
			c.t.Fatalf("%s publish %s: %v", c.ID, topic, err)
		}
		return 0
	}
	return pr.ReasonCode
}

// Expect returns the next received message whose topic matches filter, keeping the others for
// later calls. It fails the test after Timeout.
func (c *Client) Expect(filter string) *paho.Publish {
	c.t.Helper()
	p, ok := c.next(filter, Timeout)
	if !ok {
		c.t.Fatalf("%s: no message on %s within %v", c.ID, filter, Timeout)
	}
	return p
}

// ExpectNone fails if a message matching filter arrives within d. Use it only after an
// operation whose effects are known to have been delivered (for example after a later
// message), so that it proves absence rather than waits.
func (c *Client) ExpectNone(filter string, d time.Duration) {
	c.t.Helper()
	if p, ok := c.next(filter, d); ok {
		c.t.Fatalf("%s: unexpected message on %s: %s", c.ID, p.Topic, p.Payload)
	}
}

// TryNext returns a message matching filter that has already arrived, without waiting.
func (c *Client) TryNext(filter string) (*paho.Publish, bool) {
	return c.next(filter, 0)
}

// ExpectEvent returns the next JSON event named name on topic.
func (c *Client) ExpectEvent(topic, name string) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		p, ok := c.next(topic, time.Until(deadline))
		if !ok {
			c.t.Fatalf("%s: no %s event on %s within %v", c.ID, name, topic, Timeout)
		}
		var ev map[string]any
		if err := json.Unmarshal(p.Payload, &ev); err != nil {
			c.t.Fatalf("%s: event on %s is not JSON: %s", c.ID, topic, p.Payload)
		}
		if ev["event"] == name {
			return ev
		}
	}
}

func (c *Client) next(filter string, d time.Duration) (*paho.Publish, bool) {
	c.mu.Lock()
	for i, p := range c.pending {
		if wire.MatchTopic(filter, p.Topic) {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			c.mu.Unlock()
			return p, true
		}
	}
	c.mu.Unlock()
	var expired <-chan time.Time // nil: d <= 0 takes only what has arrived
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		expired = timer.C
	}
	for {
		var p *paho.Publish
		if expired == nil {
			select {
			case p = <-c.msgs:
			default:
				return nil, false
			}
		} else {
			select {
			case p = <-c.msgs:
			case <-expired:
				return nil, false
			}
		}
		if wire.MatchTopic(filter, p.Topic) {
			return p, true
		}
		c.mu.Lock()
		c.pending = append(c.pending, p)
		c.mu.Unlock()
	}
}

// RPCError is the error object of an RPC response.
type RPCError = wire.Error

// RPC calls a broker command through a v5 response topic and returns the result or the error
// object. The client must be subscribed to its replies topic (see Dial's Response Information).
func (c *Client) RPC(command string, args any) (json.RawMessage, *RPCError) {
	c.t.Helper()
	payload, err := json.Marshal(args)
	if err != nil {
		c.t.Fatalf("encode args: %v", err)
	}
	return c.RPCRaw(command, payload)
}

// RPCRaw is RPC with the request payload as given.
func (c *Client) RPCRaw(command string, payload []byte) (json.RawMessage, *RPCError) {
	c.t.Helper()
	replies := wire.UserRepliesPrefix(c.User) + c.ID
	c.ensureReplies(replies)
	corr := fmt.Sprintf("%d", c.corr.Add(1))
	code := c.Publish(wire.RPCPrefix+command, 1, payload, &paho.PublishProperties{ResponseTopic: replies, CorrelationData: []byte(corr)})
	if code >= 0x80 {
		c.t.Fatalf("%s: RPC %s refused with 0x%02x", c.ID, command, code)
	}
	for {
		p := c.Expect(replies)
		if p.Properties == nil || string(p.Properties.CorrelationData) != corr {
			continue // a late answer to an earlier call
		}
		var resp struct {
			Result json.RawMessage `json:"result"`
			Error  *RPCError       `json:"error"`
		}
		if err := json.Unmarshal(p.Payload, &resp); err != nil {
			c.t.Fatalf("%s: RPC %s: bad response %s", c.ID, command, p.Payload)
		}
		return resp.Result, resp.Error
	}
}

// MustRPC calls a command and fails the test if it returns an error; it decodes the result
// into out when out is not nil.
func (c *Client) MustRPC(command string, args any, out any) {
	c.t.Helper()
	res, rerr := c.RPC(command, args)
	if rerr != nil {
		c.t.Fatalf("%s: RPC %s(%v): %s: %s", c.ID, command, args, rerr.Code, rerr.Message)
	}
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			c.t.Fatalf("%s: RPC %s: result %s: %v", c.ID, command, res, err)
		}
	}
}

// RPCErrorCode calls a command that must fail and returns its error code.
func (c *Client) RPCErrorCode(command string, args any) wire.Code {
	c.t.Helper()
	res, rerr := c.RPC(command, args)
	if rerr == nil {
		c.t.Fatalf("%s: RPC %s(%v) succeeded with %s, want an error", c.ID, command, args, res)
	}
	return rerr.Code
}

var subscribedReplies sync.Map

func (c *Client) ensureReplies(topic string) {
	if _, loaded := subscribedReplies.LoadOrStore(c, topic); !loaded {
		c.MustSubscribe(topic)
	}
}

// UserProperty returns the value of a user property of p.
func UserProperty(p *paho.Publish, key string) string {
	if p.Properties == nil {
		return ""
	}
	return p.Properties.User.Get(key)
}
