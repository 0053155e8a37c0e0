package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/xid"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/devices"
	"github.com/roomq/roomq/metrics"
	"github.com/roomq/roomq/mqttws"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// Defaults of Options.
const (
	// DefaultReadLimit bounds one client frame, in bytes: actions are small.
	DefaultReadLimit int64 = 4096
	// DefaultWriteTimeout bounds writing one frame.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultPingInterval is how often the gateway sends a WebSocket ping.
	DefaultPingInterval = 30 * time.Second
	// DefaultPongTimeout is how long after a ping is due a silent client is closed.
	DefaultPongTimeout = 15 * time.Second
	// DefaultSendQueue is how many frames may wait for a slow client before it is closed.
	DefaultSendQueue = 256
	// DefaultAuthTimeout bounds checking a session, and recording a connection.
	DefaultAuthTimeout = 10 * time.Second
)

// ClientIDPrefix starts the client id of every gateway connection ("ws-gw-" and an xid), as
// the devices registry, presence and listOwnSockets see it.
const ClientIDPrefix = "ws-gw-"

// AuthClientID is the client id the gateway passes to the Authenticator: the connection's own
// id is made after the session is accepted, and one fixed id lets an HTTP backend tell
// gateway sessions apart and its answers be cached.
const AuthClientID = "ws-gw"

// Transport is the transport label of gateway connections in the metrics
// (roomq_connections, roomq_connections_opened_total).
const Transport = "gateway"

// inlineID is the identifier of the gateway's inline subscriptions on the topic index.
const inlineID = 0x6777

// Log keys.
const (
	logKeyUser   = "user"
	logKeyClient = "client"
	logKeyRemote = "remote"
	logKeyOrigin = "origin"
	logKeyError  = "error"
)

// Sessions records gateway connections as connections of their user. *devices.Registry
// implements it.
type Sessions interface {
	// Connected records a connection; presence counts it.
	Connected(ctx context.Context, s *devices.Session) error
	// Disconnected records the end of a connection.
	Disconnected(ctx context.Context, s *devices.Session, graceful bool)
	// UserConnections returns the connections of user on all instances.
	UserConnections(ctx context.Context, user string) ([]store.Connection, error)
}

// Topics is the Mochi server's topic index (mqtt.Server.Topics implements it): the gateway
// listens to direct messages and presence with inline subscriptions, and reads the retained
// presences.
type Topics interface {
	InlineSubscribe(sub mqtt.InlineSubscription) bool
	InlineUnsubscribe(id int, filter string) bool
	Messages(filter string) []packets.Packet
}

// Options configure a Gateway.
type Options struct {
	// Authenticator resolves sessions to users. Required.
	Authenticator acl.Authenticator
	// Sessions records the connections. Required.
	Sessions Sessions
	// Topics is the topic index of the Mochi server whose router delivers direct messages
	// and presence. Required.
	Topics Topics
	// AllowedOrigins lists the browser origins, besides the request's own host, that may
	// connect: the policy of mqttws.Options.AllowedOrigins.
	AllowedOrigins []string
	// MaxConnectionsPerUser refuses (HTTP 429) a user's connection beyond this many, MQTT
	// and gateway connections on all instances together; 0 means no limit. Global admins are
	// not limited.
	MaxConnectionsPerUser int
	// DefaultEvents are the events a new connection is subscribed to; nil means all of
	// EventMsg, EventOnline and EventOffline, as hu60bot does.
	DefaultEvents []string
	// ReadLimit bounds a client frame in bytes (DefaultReadLimit when 0); a larger one
	// closes the connection (close code 1009).
	ReadLimit int64
	// WriteTimeout bounds writing one frame (DefaultWriteTimeout when 0).
	WriteTimeout time.Duration
	// PingInterval is how often a WebSocket ping is sent (DefaultPingInterval when 0);
	// a client that sends nothing, pong included, for PingInterval + PongTimeout is closed.
	PingInterval time.Duration
	// PongTimeout: see PingInterval (DefaultPongTimeout when 0).
	PongTimeout time.Duration
	// SendQueue bounds the frames waiting for one client (DefaultSendQueue when 0); a client
	// that falls further behind has its socket closed at once (the client sees 1006).
	SendQueue int
	// AuthTimeout bounds the session check (DefaultAuthTimeout when 0).
	AuthTimeout time.Duration
	// Logger receives the gateway's logs; nil means slog.Default(). Sessions, cookies and
	// frames are never logged.
	Logger *slog.Logger
	// Metrics counts connections (transport Transport) and slow clients closed
	// (metrics.DropSlowConsumer); nil counts nothing.
	Metrics *metrics.Metrics
}

// withDefaults validates o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Authenticator == nil || o.Sessions == nil || o.Topics == nil {
		errs = append(errs, errors.New("options Authenticator, Sessions and Topics are required"))
	}
	if o.ReadLimit < 0 || o.WriteTimeout < 0 || o.PingInterval < 0 || o.PongTimeout < 0 || o.SendQueue < 0 ||
		o.AuthTimeout < 0 || o.MaxConnectionsPerUser < 0 {
		errs = append(errs, errors.New("limits and durations must not be negative"))
	}
	for _, ev := range o.DefaultEvents {
		if !slices.Contains(events, ev) {
			errs = append(errs, fmt.Errorf("unknown default event %q", ev))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	if o.DefaultEvents == nil {
		o.DefaultEvents = events
	}
	if o.ReadLimit == 0 {
		o.ReadLimit = DefaultReadLimit
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PongTimeout == 0 {
		o.PongTimeout = DefaultPongTimeout
	}
	if o.SendQueue == 0 {
		o.SendQueue = DefaultSendQueue
	}
	if o.AuthTimeout == 0 {
		o.AuthTimeout = DefaultAuthTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Gateway is the /v1/ws handler. Build it with New, mount it on the HTTP mux, and Close it
// before the Mochi server stops, so that its users' presence is updated.
//
// Lock order: presenceMu before mu; conn.mu is taken with mu held, never the reverse. No lock
// of the gateway is held while it calls Sessions or the Authenticator.
type Gateway struct {
	opts     Options
	log      *slog.Logger
	origins  mqttws.OriginChecker
	upgrader websocket.Upgrader

	// handlers counts the ServeHTTP calls admitted while open; Add only under mu.
	handlers sync.WaitGroup

	mu     sync.RWMutex
	closed bool
	conns  map[string]map[*conn]struct{} // by user

	presenceMu sync.Mutex
	// online holds the connection count of every online user, as the latest presence says.
	online map[string]int
}

// filters are the topics the gateway listens to.
var filters = []string{wire.UserInboxTopic("+"), wire.PresenceTopic("+")}

// New validates opts and returns a Gateway that listens to the direct messages and presence
// delivered on opts.Topics from now on.
func New(opts Options) (*Gateway, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	origins, err := mqttws.NewOriginChecker(opts.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	g := &Gateway{
		opts:    opts,
		log:     opts.Logger.With("component", "gateway"),
		origins: origins,
		conns:   make(map[string]map[*conn]struct{}),
		online:  make(map[string]int),
	}
	g.upgrader = websocket.Upgrader{
		HandshakeTimeout: opts.WriteTimeout,
		CheckOrigin:      func(*http.Request) bool { return true }, // checked before
	}
	// Held while subscribing and reading the retained presences: a presence delivered
	// meanwhile waits, and wins over the retained one it replaces.
	g.presenceMu.Lock()
	defer g.presenceMu.Unlock()
	handlers := []mqtt.InlineSubFn{g.onInbox, g.onPresence}
	for i, f := range filters {
		sub := mqtt.InlineSubscription{Subscription: packets.Subscription{Filter: f, Identifier: inlineID}, Handler: handlers[i]}
		if !opts.Topics.InlineSubscribe(sub) {
			for _, f := range filters[:i] {
				opts.Topics.InlineUnsubscribe(inlineID, f)
			}
			return nil, ErrSubscribed
		}
	}
	for _, pk := range opts.Topics.Messages(wire.PresenceTopic("+")) {
		var p wire.Presence
		if json.Unmarshal(pk.Payload, &p) == nil && p.Connections > 0 {
			g.online[p.User] = p.Connections
		}
	}
	return g, nil
}

// ServeHTTP serves one gateway connection, returning when it has ended. Before the upgrade it
// answers 503 once closed, 403 to a browser origin that is not allowed, 401 without a session
// or with one the Authenticator refuses, 503 when the Authenticator or the store cannot
// answer, and 429 to a user over MaxConnectionsPerUser.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.admit() {
		http.Error(w, "gateway is not serving", http.StatusServiceUnavailable)
		return
	}
	defer g.handlers.Done()
	if key, ok := g.origins.Check(r); !ok {
		if key == "" {
			key = "(malformed)"
		}
		g.log.Warn("gateway origin refused", logKeyOrigin, key, logKeyRemote, r.RemoteAddr)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	id, status := g.authenticate(r)
	if status != http.StatusOK {
		http.Error(w, http.StatusText(status), status)
		return
	}
	ws, err := g.upgrader.Upgrade(w, r, nil) // answers the client itself on failure
	if err != nil {
		g.log.Debug("gateway upgrade failed", logKeyRemote, r.RemoteAddr, logKeyError, err)
		return
	}
	c := newConn(g, ws, id)
	if !g.track(c) {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "shutting down"),
			time.Now().Add(g.opts.WriteTimeout))
		_ = ws.Close()
		return
	}
	c.push(frameConnected)
	go c.writeLoop() // ends once c is closed; waited for below

	ctx, cancel := context.WithTimeout(context.Background(), g.opts.AuthTimeout)
	if err := g.opts.Sessions.Connected(ctx, c.session); err != nil {
		g.log.Error("record gateway connection", logKeyClient, c.session.ClientID, logKeyError, err)
	}
	cancel()
	g.opts.Metrics.ConnectionOpened(Transport)
	defer g.opts.Metrics.ConnectionClosed(Transport)
	g.log.Debug("gateway connection opened", logKeyClient, c.session.ClientID, logKeyUser, id.User, logKeyRemote, r.RemoteAddr)

	err = c.readLoop()
	c.close(websocket.CloseNormalClosure, "")
	<-c.writerDone
	g.untrack(c)
	ctx, cancel = context.WithTimeout(context.Background(), g.opts.AuthTimeout)
	g.opts.Sessions.Disconnected(ctx, c.session, true)
	cancel()
	g.log.Debug("gateway connection closed", logKeyClient, c.session.ClientID, logKeyUser, id.User, logKeyError, err)
}

// authenticate resolves the session of r to an identity, or returns the HTTP status that
// refuses it. The session goes to the Authenticator as the password, with no user name, the
// request's cookies and query, and client id AuthClientID.
func (g *Gateway) authenticate(r *http.Request) (acl.Identity, int) {
	creds := acl.Credentials{
		ClientID: AuthClientID,
		Remote:   r.RemoteAddr,
		Cookies:  make(map[string]string),
		Query:    r.URL.Query(),
	}
	for _, c := range r.Cookies() {
		if _, dup := creds.Cookies[c.Name]; !dup {
			creds.Cookies[c.Name] = c.Value
		}
	}
	sid := creds.SessionID()
	if sid == "" {
		return acl.Identity{}, http.StatusUnauthorized
	}
	creds.Password = []byte(sid)
	ctx, cancel := context.WithTimeout(r.Context(), g.opts.AuthTimeout)
	defer cancel()
	id, err := g.opts.Authenticator.Authenticate(ctx, creds)
	switch {
	case errors.Is(err, acl.ErrAuthUnavailable):
		g.log.Warn("gateway session not checked", logKeyRemote, r.RemoteAddr, logKeyError, err)
		return acl.Identity{}, http.StatusServiceUnavailable
	case err != nil:
		g.log.Info("gateway session refused", logKeyRemote, r.RemoteAddr, logKeyError, err)
		return acl.Identity{}, http.StatusUnauthorized
	case !wire.ValidName(id.User):
		g.log.Warn("gateway session refused: the authenticator returned an invalid user name", logKeyRemote, r.RemoteAddr)
		return acl.Identity{}, http.StatusUnauthorized
	}
	if g.opts.MaxConnectionsPerUser > 0 && !id.IsAdmin() {
		conns, err := g.opts.Sessions.UserConnections(ctx, id.User)
		if err != nil {
			g.log.Warn("gateway connection refused: store unavailable", logKeyUser, id.User, logKeyError, err)
			return acl.Identity{}, http.StatusServiceUnavailable
		}
		if len(conns) >= g.opts.MaxConnectionsPerUser {
			g.log.Info("gateway connection refused: too many connections", logKeyUser, id.User, "connections", len(conns))
			return acl.Identity{}, http.StatusTooManyRequests
		}
	}
	return id, http.StatusOK
}

// admit registers a ServeHTTP call unless the gateway is closed.
func (g *Gateway) admit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.handlers.Add(1)
	return true
}

// track records c under its user; it refuses once closed.
func (g *Gateway) track(c *conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	set := g.conns[c.id.User]
	if set == nil {
		set = make(map[*conn]struct{})
		g.conns[c.id.User] = set
	}
	set[c] = struct{}{}
	return true
}

// untrack forgets c.
func (g *Gateway) untrack(c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	set := g.conns[c.id.User]
	delete(set, c)
	if len(set) == 0 {
		delete(g.conns, c.id.User)
	}
}

// all returns every connection.
func (g *Gateway) all() []*conn {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out []*conn
	for _, set := range g.conns {
		for c := range set {
			out = append(out, c)
		}
	}
	return out
}

// Disconnect closes the connection with client id clientID on this gateway (close code 1008,
// with the reason "disconnected"), as the disconnect command asks; it reports false when there
// is no such connection here.
func (g *Gateway) Disconnect(clientID string) bool {
	for _, c := range g.all() {
		if c.session.ClientID == clientID {
			c.close(websocket.ClosePolicyViolation, "disconnected")
			return true
		}
	}
	return false
}

// DisconnectAll closes every connection (close code 1013, try again later) and keeps serving:
// for an instance that the others took for dead, whose connections are no longer recorded.
func (g *Gateway) DisconnectAll() {
	for _, c := range g.all() {
		c.close(websocket.CloseTryAgainLater, "reconnect")
	}
}

// Close stops the gateway: later requests get 503, every connection is closed (close code
// 1001, going away) and recorded as ended, and the inline subscriptions are removed. It waits
// for the connections' handlers until ctx ends. Calling it again only waits again.
func (g *Gateway) Close(ctx context.Context) error {
	g.mu.Lock()
	first := !g.closed
	g.closed = true
	g.mu.Unlock()
	for _, c := range g.all() {
		c.close(websocket.CloseGoingAway, "shutting down")
	}
	done := make(chan struct{})
	go func() { // ends when the handlers have, bounded by WriteTimeout and AuthTimeout
		g.handlers.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("gateway: close: %w", ctx.Err())
	}
	if first {
		for _, f := range filters {
			g.opts.Topics.InlineUnsubscribe(inlineID, f)
		}
	}
	return err
}

// newClientID returns a new gateway connection's client id.
func newClientID() (string, string) {
	x := xid.New().String()
	return ClientIDPrefix + x, x
}
