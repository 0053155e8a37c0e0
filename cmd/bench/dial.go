package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/roomq/roomq/internal/wsnet"
)

// dialTimeout bounds one connection attempt.
const dialTimeout = 10 * time.Second

// dialer opens network connections to one broker URL (tcp://host:port or ws://host:port/path),
// spreading them over local source addresses when asked.
type dialer struct {
	url     *url.URL
	sources []net.IP // local addresses to dial from, round robin; empty: the system's choice

	mu   sync.Mutex
	next int
}

// newDialer parses rawURL and prepares n source addresses 127.0.0.2, 127.0.0.3, ... (n = 0:
// none).
func newDialer(rawURL string, sources int) (*dialer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse broker URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ws":
	default:
		return nil, fmt.Errorf("broker URL %q: scheme must be tcp:// or ws://", rawURL)
	}
	d := &dialer{url: u}
	for i := range sources {
		d.sources = append(d.sources, net.IPv4(127, byte((i+2)>>16), byte((i+2)>>8), byte(i+2)))
	}
	return d, nil
}

// source returns the next local address, or nil.
func (d *dialer) source() net.IP {
	if len(d.sources) == 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ip := d.sources[d.next%len(d.sources)]
	d.next++
	return ip
}

// dial opens one connection.
func (d *dialer) dial(ctx context.Context) (net.Conn, error) {
	nd := &net.Dialer{Timeout: dialTimeout}
	if ip := d.source(); ip != nil {
		nd.LocalAddr = &net.TCPAddr{IP: ip}
	}
	switch d.url.Scheme {
	case "ws":
		wd := websocket.Dialer{
			Subprotocols:     []string{"mqtt"},
			HandshakeTimeout: dialTimeout,
			NetDialContext:   nd.DialContext,
		}
		ws, resp, err := wd.DialContext(ctx, d.url.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", d.url, err)
		}
		_ = resp.Body.Close()
		return wsnet.Conn(ws), nil
	default:
		c, err := nd.DialContext(ctx, "tcp", d.url.Host)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", d.url, err)
		}
		return c, nil
	}
}

// clientOptions describe one MQTT v5 client connection.
type clientOptions struct {
	ClientID   string
	User       string
	Password   string
	KeepAlive  uint16
	CleanStart bool
	// SessionExpiry keeps the session this many seconds after a disconnect.
	SessionExpiry uint32
	// OnPublish receives every PUBLISH; it runs on the client's single delivery goroutine.
	OnPublish func(*paho.Publish)
	// OnError is called when the connection fails (not after Disconnect).
	OnError func(error)
}

// connect dials and sends CONNECT; the returned client is connected.
func (d *dialer) connect(ctx context.Context, o clientOptions) (*paho.Client, error) {
	c, _, _, err := d.connectConn(ctx, o)
	return c, err
}

// connectConn is connect that also returns the network connection, which the caller may close
// to end writes blocked on a broker that stopped reading, and the CONNACK.
func (d *dialer) connectConn(ctx context.Context, o clientOptions) (*paho.Client, net.Conn, *paho.Connack, error) {
	conn, err := d.dial(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := paho.ClientConfig{
		ClientID:      o.ClientID,
		Conn:          packets.NewThreadSafeConn(conn),
		PacketTimeout: dialTimeout,
	}
	if o.OnPublish != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			o.OnPublish(pr.Packet)
			return true, nil
		}}
	}
	if o.OnError != nil {
		cfg.OnClientError = o.OnError
		cfg.OnServerDisconnect = func(dc *paho.Disconnect) {
			o.OnError(fmt.Errorf("server disconnect 0x%02x", dc.ReasonCode))
		}
	}
	c := paho.NewClient(cfg)
	keepAlive := o.KeepAlive
	if keepAlive == 0 {
		keepAlive = 60
	}
	cp := &paho.Connect{
		ClientID:     o.ClientID,
		KeepAlive:    keepAlive,
		CleanStart:   o.CleanStart,
		Username:     o.User,
		UsernameFlag: o.User != "",
		Properties:   &paho.ConnectProperties{},
	}
	if o.Password != "" {
		cp.Password, cp.PasswordFlag = []byte(o.Password), true
	}
	if o.SessionExpiry > 0 {
		se := o.SessionExpiry
		cp.Properties.SessionExpiryInterval = &se
	}
	cctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	ca, err := c.Connect(cctx, cp)
	if err != nil {
		_ = conn.Close()
		if ca != nil {
			return nil, nil, nil, fmt.Errorf("connect %s: CONNACK 0x%02x: %w", o.ClientID, ca.ReasonCode, err)
		}
		return nil, nil, nil, fmt.Errorf("connect %s: %w", o.ClientID, err)
	}
	return c, conn, ca, nil
}

// disconnect ends a client gracefully and waits until its goroutines are done.
func disconnect(c *paho.Client) {
	if c == nil {
		return
	}
	_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
	}
}

// subscribe subscribes c to filter at qos and fails on a refusal.
func subscribe(ctx context.Context, c *paho.Client, filter string, qos byte, props paho.UserProperties) error {
	s := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}}
	if props != nil {
		s.Properties = &paho.SubscribeProperties{User: props}
	}
	sctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	sa, err := c.Subscribe(sctx, s)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	if len(sa.Reasons) != 1 || sa.Reasons[0] >= 0x80 {
		return fmt.Errorf("subscribe %s: refused %v", filter, sa.Reasons)
	}
	return nil
}
