package hooks

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/xid"
	"golang.org/x/time/rate"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/devices"
	"github.com/roomq/roomq/metrics"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// Defaults of RouterOptions.
const (
	DefaultMaxQueued       = 10000
	DefaultMaxInflight     = 1024
	DefaultCommandTimeout  = 10 * time.Second
	brokerInlineClientID   = "$roomq-broker"
	remoteInlineClientID   = "$roomq-remote"
	inlineListenerID       = "local"
	userPropertyID         = "id"
	userPropertyAuthor     = "author"
	userPropertyTimestamp  = "timestamp"
	userPropertyEpoch      = "epoch"
	userPropertySince      = "since"
	userPropertyEpochRoom  = "epoch:"
	userPropertySinceRoom  = "since:"
	maxClientReceiveWindow = 65535
)

// RouterOptions configure the Router hook.
type RouterOptions struct {
	// Server is the Mochi server the router is installed in. Required.
	Server *mqtt.Server
	// Auth is the Auth hook that authenticated the clients. Required.
	Auth *Auth
	// Rooms, Devices and Commands are the broker's services. Required.
	Rooms    *rooms.Service
	Devices  *devices.Registry
	Commands *commands.Service
	// Policy judges plain topics.
	Policy acl.Policy
	// Access reads rooms and access lists, to send room events only to users allowed in.
	// Required.
	Access store.AccessLists
	// MaxQueued is how many packets a connection may fall behind before it is disconnected
	// (default 10000).
	MaxQueued int
	// MaxInflight caps the unacknowledged QoS > 0 packets per connection, below the client's
	// Receive Maximum (default 1024).
	MaxInflight int
	// WriteDelay is how long a connection's writer waits, after writing, for more room
	// messages to write together with them (0: it writes each as soon as it can). The first
	// packet after a quiet moment, and any other than a room message, is written at once.
	WriteDelay time.Duration
	// CommandTimeout bounds one command (default 10 s).
	CommandTimeout time.Duration
	// Broadcast carries the broker's own messages (events, presence, direct messages) to the
	// other instances; nil for a single instance.
	Broadcast store.Broadcaster
	// Routes carries what clients publish to plain topics to the other instances with
	// subscribers; nil for a single instance. It needs Broadcast.
	Routes store.Routes
	// Replies keeps the rights to answer device-to-device requests; nil refuses every
	// answer under users/{user}/replies/.
	Replies store.Replies
	// ReplyTimeout is how long a client that received a request may answer it
	// (DefaultReplyTimeout when 0).
	ReplyTimeout time.Duration
	// Retained keeps the retained messages of plain topics for all instances; nil for a
	// single instance.
	Retained store.Retained
	// RouteRefresh is how often unused routes are dropped and the other instances' read
	// again (DefaultRouteRefresh when 0).
	RouteRefresh time.Duration
	// Instance names this instance, so that it skips its own broadcasts. Required with
	// Broadcast.
	Instance string
	// PublishRate limits the PUBLISH packets of one connection per second, with bursts of
	// PublishBurst (default: the rate, at least 1); 0 means no limit. Over the limit a v5
	// client gets 0x97 (quota exceeded) and an RPC request the error rateLimited.
	PublishRate  float64
	PublishBurst int
	// Logger receives the hook's logs; nil means slog.Default().
	Logger *slog.Logger
	// Metrics counts connections, messages, refusals, RPC calls and drops; nil counts nothing.
	Metrics *metrics.Metrics
}

// Router maps MQTT onto rooms, direct messages, RPC and presence. It implements
// commands.Transport, rooms.Notifier, devices.Notifier and devices.WillPublisher.
//
// Lock order: Router.mu before conn.mu; a room's lock (package rooms) before outbox.mu. No lock
// of this package is held while it calls into package rooms, devices or commands.
type Router struct {
	mqtt.HookBase
	srv      *mqtt.Server
	auth     *Auth
	rooms    *rooms.Service
	devices  *devices.Registry
	commands *commands.Service
	policy   acl.Policy
	access   store.AccessLists
	opts     RouterOptions
	log      *slog.Logger
	inline   *mqtt.Client
	// remote publishes, through Mochi, the plain messages that other instances forward, so
	// that they reach subscribers as local ones do (offline sessions and shared
	// subscriptions included).
	remote *mqtt.Client

	mu    sync.Mutex
	conns map[*mqtt.Client]*conn
	byID  map[string]*conn // the newest connection of each client id
	// offline holds, for sessions that outlive their connection, what the next connection
	// of the session continues with.
	offline map[string]pausedSession
	closed  bool
	wg      sync.WaitGroup

	outgoing      chan envelope // to the other instances (shared.go)
	stopListening func()        // ends the subscription to the other instances
	stopMailbox   func()        // ends the subscription to this instance's mailbox

	routing     *routing
	stopRouting chan struct{} // closed by stopSharing: keepRoutes ends

	retainedMu sync.Mutex
	// retained holds the newest retained message of each topic retained here from the
	// store, with its version.
	retained map[string]retainedVersion

	presenceMu sync.Mutex
	// presence holds the version of the presence/{user} message retained here, per user.
	presence map[string]uint64
}

var (
	_ mqtt.Hook             = (*Router)(nil)
	_ commands.Transport    = (*Router)(nil)
	_ rooms.Notifier        = (*Router)(nil)
	_ devices.Notifier      = (*Router)(nil)
	_ devices.WillPublisher = (*Router)(nil)
)

// conn is the router's state of one connection.
type conn struct {
	cl      *mqtt.Client
	session *devices.Session
	out     *outbox
	limiter *rate.Limiter // nil without a publish rate limit
	// hook is the connection as the connection hooks see it.
	hook *commands.Connection

	posts *postPipe // its room posts on their way

	// retainWanted is what the SUBSCRIBE being processed asks of retained messages
	// (retained.go); only the client's read goroutine uses it.
	retainWanted []retainWanted

	mu    sync.Mutex
	rooms map[string]*roomSub // joined rooms on this connection
}

// NewRouter returns the Router hook. Install it after the Auth hook.
func NewRouter(opts RouterOptions) (*Router, error) {
	if opts.Server == nil || opts.Auth == nil || opts.Rooms == nil || opts.Devices == nil || opts.Commands == nil || opts.Access == nil {
		return nil, errors.New("hooks: RouterOptions.Server, Auth, Rooms, Devices, Commands and Access are required")
	}
	if opts.MaxQueued <= 0 {
		opts.MaxQueued = DefaultMaxQueued
	}
	if opts.MaxInflight <= 0 {
		opts.MaxInflight = DefaultMaxInflight
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	if opts.Broadcast != nil && opts.Instance == "" {
		return nil, errors.New("hooks: RouterOptions.Instance is required with Broadcast")
	}
	if opts.Routes != nil && opts.Broadcast == nil {
		return nil, errors.New("hooks: RouterOptions.Routes needs Broadcast")
	}
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = DefaultReplyTimeout
	}
	if opts.RouteRefresh <= 0 {
		opts.RouteRefresh = DefaultRouteRefresh
	}
	if opts.PublishRate > 0 && opts.PublishBurst <= 0 {
		opts.PublishBurst = max(1, int(opts.PublishRate))
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if !limitServerPacketIDs(opts.Server) {
		return nil, errors.New("hooks: cannot keep Mochi's packet ids apart from the outbox's (see limitServerPacketIDs)")
	}
	inline := opts.Server.NewClient(nil, inlineListenerID, brokerInlineClientID, true)
	inline.Properties.ProtocolVersion = 5
	remote := opts.Server.NewClient(nil, inlineListenerID, remoteInlineClientID, true)
	remote.Properties.ProtocolVersion = 5
	return &Router{
		srv:      opts.Server,
		auth:     opts.Auth,
		rooms:    opts.Rooms,
		devices:  opts.Devices,
		commands: opts.Commands,
		policy:   opts.Policy,
		access:   opts.Access,
		opts:     opts,
		log:      opts.Logger,
		inline:   inline,
		remote:   remote,
		conns:    make(map[*mqtt.Client]*conn),
		byID:     make(map[string]*conn),
		offline:  make(map[string]pausedSession),
		presence: make(map[string]uint64),
		retained: make(map[string]retainedVersion),
		routing:  newRouting(),
		outgoing: make(chan envelope, broadcastQueue),

		stopRouting: make(chan struct{}),
	}, nil
}

// ID implements mqtt.Hook.
func (r *Router) ID() string { return "roomq-router" }

// Provides implements mqtt.Hook.
func (r *Router) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPublish, mqtt.OnSubscribed,
		mqtt.OnUnsubscribed, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnStopped, mqtt.OnClientExpired,
		mqtt.OnPacketEncode, mqtt.OnPacketRead, mqtt.OnSubscribe, mqtt.OnRetainMessage,
	}, []byte{b})
}

// spawn runs f in a goroutine owned by the router; it refuses once the router stopped.
func (r *Router) spawn(f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

func (r *Router) conn(cl *mqtt.Client) (*conn, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.conns[cl]
	return c, ok
}

// connByID returns the live connection with client id id on this instance.
func (r *Router) connByID(id string) (*conn, bool) {
	cl, ok := r.srv.Clients.Get(id)
	if !ok || cl.Closed() {
		return nil, false
	}
	return r.conn(cl)
}

func (r *Router) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.opts.CommandTimeout)
}

// OnSessionEstablished starts tracking a connection after its CONNACK: its outbox, its
// presence, and the rooms of a resumed session.
func (r *Router) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	id, ok := r.auth.Identity(cl)
	if !ok {
		return
	}
	moveServerPacketIDs(cl)
	limit := int(cl.Properties.Props.ReceiveMaximum)
	if cl.Properties.ProtocolVersion < 5 || limit == 0 {
		limit = maxClientReceiveWindow
	}
	limit = min(limit, r.opts.MaxInflight)
	c := &conn{cl: cl, rooms: make(map[string]*roomSub), hook: r.auth.Connection(cl), posts: newPostPipe()}
	if r.opts.PublishRate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(r.opts.PublishRate), r.opts.PublishBurst)
	}
	c.out = newOutbox(cl, limit, r.opts.MaxQueued, r.spawn, func() {
		// Called with a room's lock held: close the connection in the background, without a
		// DISCONNECT, which could not get past the unread data anyway.
		r.opts.Metrics.Dropped(metrics.DropSlowConsumer)
		r.log.Warn("slow consumer disconnected", logKeyClient, cl.ID, logKeyUser, id.User, "queued", r.opts.MaxQueued)
		r.spawn(func() { cl.Stop(packets.ErrQuotaExceeded) })
	}, r.opts.Metrics, r.srv.Info)
	c.out.delay = r.opts.WriteDelay
	c.session = &devices.Session{
		ClientID:    cl.ID,
		ID:          xid.New().String(),
		Identity:    id,
		ConnectedAt: time.Now(),
		Will:        r.takeWill(cl, id),
	}
	r.mu.Lock()
	paused, resumed := r.offline[cl.ID], !cl.Properties.Clean
	delete(r.offline, cl.ID)
	if prev, ok := r.byID[cl.ID]; ok { // taken over while still connected
		paused = prev.pause()
		resumed = resumed && !(prev.cl.Properties.Clean && prev.cl.Properties.ProtocolVersion < 5) // as Mochi decides
	}
	positions := paused.positions
	if resumed {
		c.out.resend(paused.unacked) // first, before anything else can reach c
	}
	r.conns[cl] = c
	r.byID[cl.ID] = c
	r.opts.Metrics.ConnectionOpened(cl.Net.Listener) // under r.mu: before OnDisconnect can find c
	r.mu.Unlock()
	c.out.start()

	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.devices.Connected(ctx, c.session); err != nil {
		r.log.Error("record connection", logKeyClient, cl.ID, logKeyError, err)
	}
	// A connection with this client id on another instance is taken over.
	r.broadcast(envelope{Kind: kindTakeover, Client: cl.ID, Session: c.session.ID, At: c.session.ConnectedAt.UnixMilli()})
	// A resumed session keeps its subscriptions [MQTT-3.1.2-5]: rejoin its rooms where the
	// previous connection stopped, so that nothing is missed or doubled.
	for filter, sub := range cl.State.Subscriptions.GetAll() {
		if t := wire.ParseTopic(filter); t.Kind == wire.TopicRoom {
			if _, err := r.joinRoom(ctx, c, t.Name, sub, positions[t.Name]); err != nil {
				r.log.Info("rejoin room failed", logKeyClient, cl.ID, logKeyRoom, t.Name, logKeyError, err)
				r.dropSubscription(cl, filter)
			}
		}
	}
}

// takeWill moves the client's will from Mochi to the devices registry, which publishes it
// through the router (so that a will to a room becomes a room message, and a dead instance's
// wills can be published by another).
func (r *Router) takeWill(cl *mqtt.Client, id acl.Identity) *devices.Will {
	w := cl.Properties.Will
	if w.Flag == 0 {
		return nil
	}
	cl.Properties.Will = mqtt.Will{}
	props := make([][2]string, len(w.User))
	for i, p := range w.User {
		props[i] = [2]string{p.Key, p.Val}
	}
	return &devices.Will{
		ClientID:   cl.ID,
		User:       id.User,
		Topic:      w.TopicName,
		Payload:    bytes.Clone(w.Payload),
		QoS:        w.Qos,
		Retain:     w.Retain,
		Properties: props,
		Delay:      time.Duration(w.WillDelayInterval) * time.Second,
	}
}

// OnDisconnect ends a connection: it leaves its rooms, stops its outbox, and reports it to the
// devices registry, which publishes the will when the connection ended without DISCONNECT.
func (r *Router) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if expire {
		defer r.keepSuccessor(cl)
	}
	r.mu.Lock()
	c, ok := r.conns[cl]
	delete(r.conns, cl)
	if ok {
		if r.byID[cl.ID] == c {
			delete(r.byID, cl.ID)
			if !expire {
				r.offline[cl.ID] = c.pause()
			}
		}
		c.out.takeUnacked() // stops the outbox; its packets go with the connection
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	r.opts.Metrics.ConnectionClosed(cl.Net.Listener)
	ctx, cancel := r.ctx()
	defer cancel()
	c.mu.Lock()
	joined := c.rooms
	c.rooms = make(map[string]*roomSub)
	c.mu.Unlock()
	for room := range joined {
		if _, err := r.rooms.Leave(ctx, room, c.session.Identity.User, cl.ID, c.session.ID); err != nil {
			r.log.Error("leave room on disconnect", logKeyClient, cl.ID, logKeyRoom, room, logKeyError, err)
		}
		r.commandHooks().Left(ctx, c.hook, room)
	}
	graceful := err == nil
	r.devices.Disconnected(ctx, c.session, graceful)
	r.commandHooks().Disconnected(ctx, c.hook, err)
}

// successorGuard is how long after an expiring connection's clean-up the router makes sure
// that the newer connection of its client id is still in Mochi's client list, and how often
// it looks.
const (
	successorGuard = 500 * time.Millisecond
	successorPoll  = 5 * time.Millisecond
)

// keepSuccessor guards against a Mochi v2.7.9 race: right after the last OnDisconnect hook of
// an expiring connection, Mochi deletes its client id from the client list unless the
// connection was marked as taken over, and a newer connection of the client id that is
// taking over may already be in the list then, and is deleted. For a while after the clean-up,
// a goroutine of the router puts the newer connection back when it goes missing while open.
// (Auth.awaitPredecessor closes most of the window; this closes the rest.)
func (r *Router) keepSuccessor(old *mqtt.Client) {
	r.spawn(func() {
		deadline := time.Now().Add(successorGuard)
		for time.Now().Before(deadline) {
			r.mu.Lock()
			c, ok := r.byID[old.ID]
			r.mu.Unlock()
			if ok && c.cl != old && !c.cl.Closed() {
				if cur, ok := r.srv.Clients.Get(old.ID); !ok || cur == old {
					r.srv.Clients.Add(c.cl)
				}
			}
			select {
			case <-time.After(successorPoll):
			case <-r.stopRouting:
				return
			}
		}
	})
}

// OnClientExpired forgets the room positions of an expired session.
func (r *Router) OnClientExpired(cl *mqtt.Client) {
	r.mu.Lock()
	if _, live := r.byID[cl.ID]; !live {
		delete(r.offline, cl.ID)
	}
	r.mu.Unlock()
}

// pausedSession is what a session's next connection continues with: where each joined room
// continues, and the QoS 1 packets to send again.
type pausedSession struct {
	positions map[string]*rooms.Resume
	unacked   []outItem
}

// pause stops the connection's outbox and returns what the session's next connection
// continues with. Once the outbox stopped, the positions no longer move.
func (c *conn) pause() pausedSession {
	unacked := c.out.takeUnacked()
	return pausedSession{positions: c.positions(), unacked: unacked}
}

// positions returns where each joined room of the connection continues.
func (c *conn) positions() map[string]*rooms.Resume {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*rooms.Resume, len(c.rooms))
	for room, rs := range c.rooms {
		if p := rs.position(); p != nil {
			out[room] = p
		}
	}
	return out
}

// OnPacketRead gives the PUBACKs of the outbox's QoS 1 packets to the outbox.
func (r *Router) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Puback && pk.PacketID >= firstPacketID {
		if c, ok := r.conn(cl); ok {
			c.out.acked(pk.PacketID)
		}
	}
	return pk, nil
}

// OnQosComplete releases outbox quota when a client completes a QoS 2 exchange.
func (r *Router) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if c, ok := r.conn(cl); ok {
		c.out.complete(pk.PacketID)
	}
}

// OnQosDropped releases outbox quota of a QoS 2 packet Mochi gave up on.
func (r *Router) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	r.OnQosComplete(cl, pk)
}

// OnStopped stops every outbox and waits for the router's goroutines.
func (r *Router) OnStopped() {
	r.mu.Lock()
	r.closed = true // from now on nothing is queued for the other instances
	conns := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	r.stopSharing()
	for _, c := range conns {
		c.out.close()
	}
	r.wg.Wait()
}
