package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/wire"
)

// Log keys.
const (
	logKeyClient = "client"
	logKeyRoom   = "room"
	logKeyTopic  = "topic"
	logKeyError  = "error"
	logKeyReason = "reasonCode"
	logKeyEpoch  = "epoch"
)

// Defaults of Config.
const (
	DefaultKeepAlive      = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultReconnectMin   = 100 * time.Millisecond
	DefaultReconnectMax   = 30 * time.Second
	// DefaultSetupTimeout bounds the subscriptions the client makes after each connect.
	DefaultSetupTimeout = 30 * time.Second
)

// Config configures a Client.
type Config struct {
	// ServerURLs are the broker addresses, tried in order: tcp://host:1883, tls://host:8883,
	// ws://host:8080/mqtt or wss://host/mqtt (mqtt:// and mqtts:// work too). Required.
	ServerURLs []string
	// User and Password are the MQTT credentials.
	User     string
	Password []byte
	// ClientID identifies the connection (a second connection with the same id takes over);
	// empty means a random id. It must not contain '/', '+' or '#': it names the client's
	// replies topic.
	ClientID string
	// NumberConnections makes each connection attempt use ClientID with "-N" added, N
	// counting the attempts from 1, instead of ClientID itself: a new connection then never
	// takes over the client id of the previous one, whose late clean-up on the broker could
	// otherwise end the new connection's subscriptions. The client's replies topic follows
	// the connection's id (see ClientID).
	NumberConnections bool
	// TLS configures tls:// and wss:// connections; nil means the system defaults.
	TLS *tls.Config
	// KeepAlive is the MQTT keepalive (default 30 s).
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt (default 10 s).
	ConnectTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the exponential backoff between failed connection
	// attempts (defaults 100 ms and 30 s). After a connection drops, the first attempt is
	// immediate.
	ReconnectMin, ReconnectMax time.Duration
	// Logger receives the client's logs; nil means slog.Default().
	Logger *slog.Logger

	// CallResponseTopic is the Response Topic of Call requests; empty means the protocol's
	// users/{user}/replies/{clientId}/call, where the broker lets each responder publish its
	// one reply. Set a plain topic the responders may publish to (and this client may
	// subscribe to) for other brokers. The client subscribes to it; calls are told apart by
	// their correlation data.
	CallResponseTopic string

	// OnConnect is called after each connection is up and every room, watch and handler has
	// been subscribed again.
	OnConnect func()
	// OnConnectionLost is called when an established connection drops; the client reconnects
	// on its own.
	OnConnectionLost func()
	// OnConnectError is called with the error of each failed connection attempt (the server
	// unreachable, or its CONNACK refusal, wrapping autopaho's *ConnackError); the client
	// tries again with backoff.
	OnConnectError func(error)
	// OnEvent receives every notification on users/{user}/events: echoes, systemMessage,
	// historyGap, historyReset, roomAccessRemoved and the others of docs/protocol.md.
	OnEvent func(Event)
	// OnDirectMessage receives direct messages (users/{user}/inbox). When nil the client
	// does not subscribe to its inbox.
	OnDirectMessage func(DirectMessage)
}

// Client is a connection to a roomq broker that stays up: see the package documentation.
// Its methods are safe for concurrent use.
type Client struct {
	cfg    Config
	log    *slog.Logger
	baseID string // Config.ClientID, or the random id that stands for it
	cm     *autopaho.ConnectionManager

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the client starts

	queue *queue // inbound publishes and notifications, in order, for the dispatcher

	// subMu serialises subscriptions, so that the resubscription after a reconnect and a
	// concurrent Join or Watch do not interleave. Lock order: subMu before mu.
	subMu sync.Mutex

	mu        sync.Mutex
	clientID  string // of the current connection (or attempt)
	attempts  uint64 // connection attempts, with NumberConnections
	closed    bool
	user      string        // authenticated user, from the CONNACK's Response Information
	gen       uint64        // connection generation, incremented on each connect
	ready     chan struct{} // closed once the current connection is set up
	down      chan struct{} // closed when the current connection drops; nil while down
	rooms     map[string]*roomState
	presence  map[string]func(Presence)
	handlers  map[string]RequestHandler
	pending   map[string]chan *paho.Publish // RPC and call replies by correlation data
	corrSeq   uint64
	corrBase  string
	closeOnce sync.Once
	closeErr  error
}

// Connect starts a client and waits until its first connection is up and set up (or ctx
// ends, or the broker refuses the credentials: then the error wraps autopaho's
// *ConnackError with the CONNACK reason code). Unreachable servers and "server unavailable"
// or "quota exceeded" refusals are retried with backoff until ctx ends. From then on the
// client reconnects by itself until Close.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	connectErr := make(chan error, 1)
	acfg, err := c.autopahoConfig(connectErr)
	if err != nil {
		return nil, err
	}
	c.start(func() { c.dispatch() })
	cm, err := autopaho.NewConnection(c.ctx, acfg)
	if err != nil {
		c.shutdown()
		return nil, fmt.Errorf("client: start connection: %w", err)
	}
	c.mu.Lock()
	c.cm = cm
	ready := c.ready
	c.mu.Unlock()
	// The first connection counts once its subscriptions are made.
	for {
		select {
		case <-ready:
			return c, nil
		case err := <-connectErr:
			var ce *autopaho.ConnackError
			if errors.As(err, &ce) && ce.ReasonCode >= 0x80 && ce.ReasonCode != 0x88 && ce.ReasonCode != 0x89 && ce.ReasonCode != 0x97 {
				// Bad credentials or a ban: trying again will not help.
				_ = c.Close(ctx)
				return nil, fmt.Errorf("client: connect: %w", err)
			}
		case <-ctx.Done():
			_ = c.Close(context.Background())
			return nil, fmt.Errorf("client: connect: %w", ctx.Err())
		}
	}
}

// Dial is Connect with a single server URL, user and password.
func Dial(ctx context.Context, serverURL, user string, password []byte) (*Client, error) {
	return Connect(ctx, Config{ServerURLs: []string{serverURL}, User: user, Password: password})
}

func newClient(cfg Config) (*Client, error) {
	if len(cfg.ServerURLs) == 0 {
		return nil, errors.New("client: Config.ServerURLs is required")
	}
	if wire.IsWildcard(cfg.CallResponseTopic) {
		return nil, fmt.Errorf("client: call response topic %q contains a wildcard", cfg.CallResponseTopic)
	}
	if strings.ContainsAny(cfg.ClientID, "/+#") {
		return nil, fmt.Errorf("client: client id %q contains '/', '+' or '#'", cfg.ClientID)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = DefaultReconnectMin
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = max(DefaultReconnectMax, cfg.ReconnectMin)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	id := cfg.ClientID
	if id == "" {
		id = "roomq-" + randomHex(8)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		cfg:      cfg,
		log:      cfg.Logger.With(logKeyClient, id),
		baseID:   id,
		clientID: id,
		ctx:      ctx,
		cancel:   cancel,
		queue:    newQueue(),
		user:     cfg.User,
		ready:    make(chan struct{}),
		rooms:    make(map[string]*roomState),
		presence: make(map[string]func(Presence)),
		handlers: make(map[string]RequestHandler),
		pending:  make(map[string]chan *paho.Publish),
		corrBase: randomHex(6),
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand.Read panics rather than return an error)
	return hex.EncodeToString(b)
}

// autopahoConfig maps the Config onto autopaho's.
func (c *Client) autopahoConfig(connectErr chan<- error) (autopaho.ClientConfig, error) {
	urls := make([]*url.URL, 0, len(c.cfg.ServerURLs))
	for _, s := range c.cfg.ServerURLs {
		u, err := url.Parse(s)
		if err != nil {
			return autopaho.ClientConfig{}, fmt.Errorf("client: server URL %q: %w", s, err)
		}
		switch strings.ToLower(u.Scheme) {
		case "tcp", "mqtt", "tls", "ssl", "mqtts", "ws", "wss":
		default:
			return autopaho.ClientConfig{}, fmt.Errorf("client: server URL %q: unsupported scheme %q", s, u.Scheme)
		}
		urls = append(urls, u)
	}
	keepAlive := uint16(min(c.cfg.KeepAlive/time.Second, 65535))
	return autopaho.ClientConfig{
		ServerUrls:                    urls,
		TlsCfg:                        c.cfg.TLS,
		KeepAlive:                     keepAlive,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                c.cfg.ConnectTimeout,
		ReconnectBackoff:              c.backoff,
		ConnectUsername:               c.cfg.User,
		ConnectPassword:               c.cfg.Password,
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			// Every connection starts clean: rooms resume by id, not through MQTT sessions.
			cp.CleanStart = true
			if c.cfg.NumberConnections {
				c.mu.Lock()
				c.attempts++
				c.clientID = c.baseID + "-" + strconv.FormatUint(c.attempts, 10)
				cp.ClientID = c.clientID
				c.mu.Unlock()
			}
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			cp.Properties.RequestResponseInfo = true
			cp.Properties.RequestProblemInfo = true
			return cp, nil
		},
		OnConnectionUp:   c.onConnectionUp,
		OnConnectionDown: c.onConnectionDown,
		OnConnectError: func(err error) {
			c.log.Info("connect attempt failed", logKeyError, err)
			if fn := c.cfg.OnConnectError; fn != nil {
				c.queue.push(item{fn: func() { fn(err) }})
			}
			select {
			case connectErr <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID:          c.baseID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){c.onPublish},
			OnClientError: func(err error) {
				c.log.Debug("connection error", logKeyError, err)
			},
			OnServerDisconnect: func(d *paho.Disconnect) {
				c.log.Info("server disconnected the client", logKeyReason, d.ReasonCode)
			},
		},
	}, nil
}

// backoff is the delay before connection attempt n of a series (n = 0 after a connection
// dropped): none for the first, then exponential from ReconnectMin to ReconnectMax, with
// jitter of up to a quarter.
func (c *Client) backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := c.cfg.ReconnectMax
	if shift := n - 1; shift < bits.Len64(uint64(c.cfg.ReconnectMax)) {
		if e := c.cfg.ReconnectMin << shift; e > 0 && e < d {
			d = e
		}
	}
	var b [1]byte
	_, _ = rand.Read(b[:])
	return d - d/4*time.Duration(b[0])/255
}

// start runs fn on a goroutine owned by the client, unless the client is closed.
func (c *Client) start(fn func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
	return true
}

// onConnectionUp is autopaho's callback for a new connection; it must not block, so the
// subscriptions happen on a goroutine of the client.
func (c *Client) onConnectionUp(cm *autopaho.ConnectionManager, ca *paho.Connack) {
	c.mu.Lock()
	c.gen++
	gen := c.gen
	if ca.Properties != nil && ca.Properties.ResponseInfo != "" {
		// users/{user}/replies/{clientId}: the broker's name for the authenticated user.
		if t := wire.ParseTopic(ca.Properties.ResponseInfo); t.Kind == wire.TopicUserReplies {
			c.user = t.Name
		}
	}
	c.mu.Unlock()
	c.log.Debug("connected")
	c.start(func() { c.setup(cm, gen) })
}

// onConnectionDown is autopaho's callback for a lost connection; it returns true to reconnect.
func (c *Client) onConnectionDown() bool {
	c.mu.Lock()
	select {
	case <-c.ready:
		c.ready = make(chan struct{})
	default:
	}
	if c.down != nil {
		close(c.down) // publishes waiting for their acknowledgement give up
		c.down = nil
	}
	closed := c.closed
	c.mu.Unlock()
	c.failPending()
	if !closed {
		c.log.Info("connection lost; reconnecting")
		if fn := c.cfg.OnConnectionLost; fn != nil {
			c.queue.push(item{fn: fn})
		}
	}
	return !closed
}

// setup subscribes everything the client needs on connection gen: its own topics, then its
// rooms with their resume positions, presence watches and request handlers.
func (c *Client) setup(cm *autopaho.ConnectionManager, gen uint64) {
	ctx, cancel := context.WithTimeout(c.ctx, DefaultSetupTimeout)
	defer cancel()
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if !c.current(gen) {
		return
	}
	subs := []paho.SubscribeOptions{
		{Topic: wire.UserEventsTopic(c.User()), QoS: 1},
		{Topic: c.repliesPrefix() + "#", QoS: 1},
	}
	if c.cfg.CallResponseTopic != "" {
		subs = append(subs, paho.SubscribeOptions{Topic: c.cfg.CallResponseTopic, QoS: 1})
	}
	if c.cfg.OnDirectMessage != nil {
		subs = append(subs, paho.SubscribeOptions{Topic: wire.UserInboxTopic(c.User()), QoS: 1})
	}
	c.mu.Lock()
	for f := range c.presence {
		subs = append(subs, paho.SubscribeOptions{Topic: wire.PresencePrefix + f, QoS: 1})
	}
	for f := range c.handlers {
		subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	c.mu.Unlock()
	if err := c.subscribe(ctx, cm, nil, subs...); err != nil {
		c.log.Error("subscribe after connect", logKeyError, err)
		var se *SubscribeError
		if !errors.As(err, &se) && !c.current(gen) {
			return // the connection is gone; the next one tries again
		}
	}
	if !c.resubscribeRooms(ctx, cm, gen) && !c.current(gen) {
		return // the next connection tries again
	}
	c.mu.Lock()
	if c.gen == gen {
		select {
		case <-c.ready:
		default:
			c.down = make(chan struct{})
			close(c.ready)
		}
	}
	c.mu.Unlock()
	if fn := c.cfg.OnConnect; fn != nil {
		c.queue.push(item{fn: fn})
	}
}

// current reports whether gen is the generation of the connection that is up.
func (c *Client) current(gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen == gen && !c.closed
}

// awaitReady waits until a connection is up and set up, and returns its connection manager.
func (c *Client) awaitReady(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		ready := c.ready
		c.mu.Unlock()
		select {
		case <-ready:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for the connection: %w", ctx.Err())
		case <-c.ctx.Done():
			return ErrClosed
		}
	}
}

// subscribe sends one SUBSCRIBE and turns refused filters into a *SubscribeError (the first
// refused one; the others are logged).
func (c *Client) subscribe(ctx context.Context, cm *autopaho.ConnectionManager, props paho.UserProperties, subs ...paho.SubscribeOptions) error {
	if len(subs) == 0 {
		return nil
	}
	s := &paho.Subscribe{Subscriptions: subs}
	if props != nil {
		s.Properties = &paho.SubscribeProperties{User: props}
	}
	sa, err := cm.Subscribe(ctx, s)
	if sa == nil && err != nil {
		return fmt.Errorf("subscribe: %w", connErr(err))
	}
	var first error
	for i, code := range sa.Reasons {
		if code < 0x80 || i >= len(subs) {
			continue
		}
		se := &SubscribeError{Filter: subs[i].Topic, ReasonCode: code}
		if first == nil {
			first = se
		} else {
			c.log.Warn("subscription refused", logKeyTopic, subs[i].Topic, logKeyError, se)
		}
	}
	return first
}

// connErr marks errors of a dropped connection as ErrNotConnected.
func connErr(err error) error {
	if errors.Is(err, autopaho.ConnectionDownError) || errors.Is(err, paho.ErrNetworkErrorAfterStored) {
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	return err
}

// User returns the authenticated user: the broker's name for it once connected, else
// Config.User.
func (c *Client) User() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user
}

// ClientID returns the client id of the connection: Config.ClientID (or the random id that
// stands for it), with "-N" added with Config.NumberConnections.
func (c *Client) ClientID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientID
}

// repliesPrefix returns users/{user}/replies/{clientId}/, under which the client receives
// the responses to its RPCs and calls.
func (c *Client) repliesPrefix() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return wire.UserRepliesPrefix(c.user) + c.clientID + "/"
}

// callResponseTopic returns the Response Topic of Call requests.
func (c *Client) callResponseTopic() string {
	if c.cfg.CallResponseTopic != "" {
		return c.cfg.CallResponseTopic
	}
	return c.repliesPrefix() + replyKindCall
}

// connection returns the connection manager, or ErrClosed.
func (c *Client) connection(ctx context.Context) (*autopaho.ConnectionManager, error) {
	if err := c.awaitReady(ctx); err != nil {
		return nil, err
	}
	return c.manager(), nil
}

// downSignal returns a channel closed when the current connection drops (already closed when
// there is none).
func (c *Client) downSignal() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down == nil {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return c.down
}

// manager returns autopaho's connection manager.
func (c *Client) manager() *autopaho.ConnectionManager {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cm
}

// Close disconnects (sending DISCONNECT when connected), stops every goroutine of the client
// and fails the calls under way with ErrClosed. Callbacks queued before Close still run unless
// ctx ends first. It is safe to call more than once, but not from a callback (Close waits for
// the callback goroutine, so it would wait until ctx ends).
func (c *Client) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		cm := c.cm
		c.mu.Unlock()
		if cm != nil {
			if err := cm.Disconnect(ctx); err != nil {
				c.closeErr = fmt.Errorf("client: disconnect: %w", err)
			}
		}
		c.shutdown()
		done := make(chan struct{})
		go func() { // ends when the client's goroutines have, which shutdown made sure of
			c.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			if c.closeErr == nil {
				c.closeErr = fmt.Errorf("client: close: %w", ctx.Err())
			}
		}
	})
	return c.closeErr
}

// shutdown cancels the client's context and stops the dispatcher after the queued items.
func (c *Client) shutdown() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.queue.close()
}
