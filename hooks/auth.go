package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/metrics"
	"github.com/roomq/roomq/mqttws"
	"github.com/roomq/roomq/store"
)

// AuthOptions configure the Auth hook.
type AuthOptions struct {
	// Server is the Mochi server the hook is installed in; with it, a connection waits for
	// the clean-up of a lost connection of its client id (see awaitPredecessor).
	Server *mqtt.Server
	// Authenticator checks credentials. Required.
	Authenticator acl.Authenticator
	// Policy judges topics and rooms.
	Policy acl.Policy
	// Access reads the rooms and access lists that SUBSCRIBE filters need. Required.
	Access store.AccessLists
	// Connections counts the connections of users, for MaxConnectionsPerUser.
	Connections store.Connections
	// MaxConnectionsPerUser refuses a user's connection beyond this many (CONNACK 0x97, v3.1.1
	// 0x03); 0 means no limit. Global admins are not limited.
	MaxConnectionsPerUser int
	// MaxSubscriptionsPerConnection refuses the filters of a connection beyond this many
	// (SUBACK 0x97, v3.1.1 0x80); 0 means no limit.
	MaxSubscriptionsPerConnection int
	// Timeout bounds one authentication (default 10 s).
	Timeout time.Duration
	// Logger receives the hook's logs; nil means slog.Default().
	Logger *slog.Logger
	// Metrics counts refused connections; nil counts nothing.
	Metrics *metrics.Metrics
	// Hooks holds the connect hooks run after authentication; nil means none.
	Hooks *commands.Hooks
}

// Auth is the one hook that answers OnConnectAuthenticate and OnACLCheck. Never install Mochi's
// allow-all hook beside it: Mochi allows when any hook allows.
type Auth struct {
	mqtt.HookBase
	authn   acl.Authenticator
	policy  acl.Policy
	access  store.AccessLists
	conns   store.Connections
	maxConn int
	maxSubs int
	timeout time.Duration
	log     *slog.Logger
	metrics *metrics.Metrics
	hooks   *commands.Hooks

	srv *mqtt.Server // nil: no wait for lost predecessors

	mu sync.RWMutex
	// ids holds the identity of every client, connected or the offline holder of a session
	// that persists (Mochi checks its ACL when it queues messages for it); byID the newest
	// client of each client id.
	ids  map[*mqtt.Client]acl.Identity
	byID map[string]*mqtt.Client
	// overLimit holds, per client, the filters of the SUBSCRIBE being processed that are over
	// the subscription limit, so that OnACLCheck refuses them and OnPacketEncode reports 0x97.
	overLimit map[*mqtt.Client]map[string]bool
	// hooked holds the commands.Connection of every client in ids.
	hooked map[*mqtt.Client]*commands.Connection
}

var _ mqtt.Hook = (*Auth)(nil)

// NewAuth returns the Auth hook.
func NewAuth(opts AuthOptions) (*Auth, error) {
	if opts.Authenticator == nil || opts.Access == nil {
		return nil, errors.New("hooks: AuthOptions.Authenticator and AuthOptions.Access are required")
	}
	if opts.MaxConnectionsPerUser > 0 && opts.Connections == nil {
		return nil, errors.New("hooks: AuthOptions.Connections is required with MaxConnectionsPerUser")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Auth{
		srv:     opts.Server,
		authn:   opts.Authenticator,
		policy:  opts.Policy,
		access:  opts.Access,
		conns:   opts.Connections,
		maxConn: opts.MaxConnectionsPerUser,
		maxSubs: opts.MaxSubscriptionsPerConnection,
		timeout: opts.Timeout,
		log:     opts.Logger,
		metrics: opts.Metrics,
		hooks:   opts.Hooks,
		ids:     make(map[*mqtt.Client]acl.Identity),
		hooked:  make(map[*mqtt.Client]*commands.Connection),
		byID:    make(map[string]*mqtt.Client),

		overLimit: make(map[*mqtt.Client]map[string]bool),
	}, nil
}

// ID implements mqtt.Hook.
func (a *Auth) ID() string { return "roomq-auth" }

// Provides implements mqtt.Hook.
func (a *Auth) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnDisconnect, mqtt.OnPacketEncode,
		mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnClientExpired,
	}, []byte{b})
}

// Identity returns the identity of an authenticated client.
func (a *Auth) Identity(cl *mqtt.Client) (acl.Identity, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	id, ok := a.ids[cl]
	return id, ok
}

// OnConnect authenticates the client and checks its will, answering refusals with a CONNACK
// (Mochi would close without one). [MQTT-3.2.2-6]
func (a *Auth) OnConnect(cl *mqtt.Client, pk packets.Packet) (err error) {
	a.awaitPredecessor(cl)
	defer func() { a.countRefusal(err) }()
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	creds := acl.Credentials{
		Username: string(cl.Properties.Username),
		Password: pk.Connect.Password,
		ClientID: cl.ID,
		Remote:   cl.Net.Remote,
	}
	// WebSocket clients also bring the cookies and query of their upgrade request (a session
	// cookie, a token). Never log them.
	if hs, ok := cl.Net.Conn.(mqttws.Handshake); ok {
		creds.Cookies = hs.Cookies()
		creds.Query = hs.Query()
	}
	id, err := a.authn.Authenticate(ctx, creds)
	if err != nil {
		return a.refuseAuthentication(cl, err)
	}
	if cl.Properties.Will.Flag == 1 && !a.policy.WillAllowed(id, cl.ID, cl.Properties.Will.TopicName) {
		a.log.Info("connection refused", logKeyClient, cl.ID, logKeyUser, id.User, logKeyTopic, cl.Properties.Will.TopicName, logKeyReason, "will topic not allowed")
		return refuseConnect(cl, packets.ErrNotAuthorized, packets.Err3NotAuthorized)
	}
	if a.maxConn > 0 && !id.IsAdmin() {
		if err := a.checkConnections(ctx, cl, id); err != nil {
			return err
		}
	}
	if err := a.runConnectHooks(ctx, cl, id); err != nil {
		return err
	}
	a.mu.Lock()
	if old := a.byID[cl.ID]; old != nil && old != cl && old.Closed() {
		delete(a.ids, old) // an offline session, resumed or replaced now
		delete(a.hooked, old)
	}
	a.byID[cl.ID] = cl
	a.ids[cl] = id
	a.mu.Unlock()
	return nil
}

// checkConnections refuses a connection beyond the user's limit. A connection that takes over
// one of the user's client ids does not count.
func (a *Auth) checkConnections(ctx context.Context, cl *mqtt.Client, id acl.Identity) error {
	conns, err := a.conns.UserConnections(ctx, id.User)
	if err != nil {
		a.log.Warn("connection refused", logKeyClient, cl.ID, logKeyUser, id.User, logKeyReason, "store unavailable", logKeyError, err)
		return refuseConnect(cl, packets.ErrServerUnavailable, packets.Err3ServerUnavailable)
	}
	for _, c := range conns {
		if c.ClientID == cl.ID {
			return nil
		}
	}
	if len(conns) >= a.maxConn {
		a.log.Info("connection refused", logKeyClient, cl.ID, logKeyUser, id.User, logKeyReason, "too many connections", "connections", len(conns))
		return refuseConnect(cl, packets.ErrQuotaExceeded, packets.Err3ServerUnavailable)
	}
	return nil
}

// OnSubscribe notes the filters of a SUBSCRIBE that would take the connection over its
// subscription limit; OnACLCheck refuses them.
func (a *Auth) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if a.maxSubs <= 0 {
		return pk
	}
	count := cl.State.Subscriptions.Len()
	var over map[string]bool
	for _, sub := range pk.Filters {
		if _, ok := cl.State.Subscriptions.Get(sub.Filter); ok {
			continue // a resubscription replaces, it does not add
		}
		if count >= a.maxSubs {
			if over == nil {
				over = make(map[string]bool)
			}
			over[sub.Filter] = true
			continue
		}
		count++
	}
	if over != nil {
		a.log.Info("subscriptions refused", logKeyClient, cl.ID, logKeyReason, "too many subscriptions", "limit", a.maxSubs)
		a.mu.Lock()
		a.overLimit[cl] = over
		a.mu.Unlock()
	}
	return pk
}

// OnSubscribed gives the filters over the limit the reason code 0x97 (quota exceeded; v3.1.1
// has only 0x80) and forgets them. Mochi v2.7.9 passes the SUBACK's own reason codes, which it
// writes after this hook, and later hooks (the router's joins) see the change.
func (a *Auth) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if a.maxSubs <= 0 {
		return
	}
	a.mu.Lock()
	over := a.overLimit[cl]
	delete(a.overLimit, cl)
	a.mu.Unlock()
	if cl.Properties.ProtocolVersion < 5 {
		return // already 0x80
	}
	for i, sub := range pk.Filters {
		if over[sub.Filter] && i < len(reasonCodes) {
			reasonCodes[i] = packets.ErrQuotaExceeded.Code
		}
	}
}

// overSubscriptionLimit reports whether filter is over the connection's subscription limit in
// the SUBSCRIBE being processed.
func (a *Auth) overSubscriptionLimit(cl *mqtt.Client, filter string) bool {
	if a.maxSubs <= 0 {
		return false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.overLimit[cl][filter]
}

// refuseAuthentication answers a failed authentication: CONNACK 0x88 "server unavailable"
// (v3.1.1: 0x03) when the credentials could not be checked, so that the client retries
// later, and 0x86 "bad username or password" (v3.1.1: 0x04) otherwise
// [MQTT-3.2.2-6]. Authenticators never put secrets in their errors, so err is logged.
func (a *Auth) refuseAuthentication(cl *mqtt.Client, err error) error {
	if errors.Is(err, acl.ErrAuthUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		a.log.Warn("connection refused", logKeyClient, cl.ID, logKeyRemote, cl.Net.Remote,
			logKeyReason, "authentication unavailable", logKeyError, err)
		return refuseConnect(cl, packets.ErrServerUnavailable, packets.Err3ServerUnavailable)
	}
	a.log.Info("connection refused", logKeyClient, cl.ID, logKeyRemote, cl.Net.Remote,
		logKeyReason, "authentication failed", logKeyError, err)
	return refuseConnect(cl, packets.ErrBadUsernameOrPassword, packets.ErrMalformedUsernameOrPassword)
}

// refuseConnect writes a refusing CONNACK with the v5 or v3.1.1 code and returns the error
// that makes Mochi close the connection.
func refuseConnect(cl *mqtt.Client, v5, v3 packets.Code) error {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: v5.Code}
	if cl.Properties.ProtocolVersion < 5 {
		ack.ReasonCode = v3.Code
	} else {
		ack.Properties.ReasonString = v5.Reason
	}
	if err := cl.WritePacket(ack); err != nil {
		return fmt.Errorf("refuse connection: %w", err)
	}
	return v5
}

// OnConnectAuthenticate allows exactly the clients OnConnect authenticated.
func (a *Auth) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	_, ok := a.Identity(cl)
	return ok
}

// OnACLCheck judges SUBSCRIBE filters and the topics Mochi delivers. Publishes are judged in
// Router.OnPublish, which answers with reason codes instead of disconnecting v3.1.1 clients
// (Mochi disconnects them on a write refusal), so writes pass here.
func (a *Auth) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	id, ok := a.Identity(cl)
	if !ok {
		return false
	}
	if write {
		return true
	}
	if a.overSubscriptionLimit(cl, topic) {
		return false
	}
	decision, room := a.policy.SubscribeDecision(id, cl.ID, topic)
	switch decision {
	case acl.Allow:
		return true
	case acl.AllowRoom:
		ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
		defer cancel()
		access, err := acl.LoadRoomAccess(ctx, a.access, room, id.User)
		if err != nil {
			return false
		}
		return a.policy.CanJoin(access, id)
	}
	return false
}

// OnDisconnect forgets the client, unless its session persists: messages are queued for it
// then, as its ACL allows, until it comes back or expires.
func (a *Auth) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.overLimit, cl)
	if !expire && a.byID[cl.ID] == cl {
		return
	}
	a.forgetLocked(cl)
}

// OnClientExpired forgets the client of a session that expired.
func (a *Auth) OnClientExpired(cl *mqtt.Client) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.forgetLocked(cl)
}

// forgetLocked forgets cl. Lock a.mu must be held.
func (a *Auth) forgetLocked(cl *mqtt.Client) {
	delete(a.ids, cl)
	delete(a.hooked, cl)
	if a.byID[cl.ID] == cl {
		delete(a.byID, cl.ID)
	}
}

// OnPacketEncode adds Response Information to the CONNACK of clients that asked for it: the
// topic prefix users/{user}/replies/{clientId} for their RPC responses. Mochi does not pass it
// to SendConnack. [MQTT-3.1.2-28]
//
// It also keeps the user properties of PUBLISH packets when the client set Request Problem
// Information to 0: that setting only covers packets other than PUBLISH, CONNACK and
// DISCONNECT [MQTT-3.1.2-29], but Mochi strips them from every packet, and room messages carry
// their id, author, timestamp and epoch there.
func (a *Auth) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Publish {
		pk.Mods.DisallowProblemInfo = false
		return pk
	}
	if pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 || cl.Properties.Props.RequestResponseInfo != 1 {
		return pk
	}
	if id, ok := a.Identity(cl); ok {
		pk.Properties.ResponseInfo = responseInfo(id.User, cl.ID)
	}
	return pk
}

// predecessorWait bounds how long a connection waits for the clean-up of a lost connection of
// its client id.
const predecessorWait = 2 * time.Second

// awaitPredecessor waits, when a lost connection of cl's client id is still being cleaned up
// and its session ends with it, until Mochi has removed it from its client list (at most
// predecessorWait). Mochi v2.7.9 ends such a connection with Clients.Delete of its client id
// after checking that nobody took it over; a new connection that takes it over in between
// adds itself to the list first and is then deleted from it, and gets nothing. Waiting
// here, before the takeover, orders the two.
func (a *Auth) awaitPredecessor(cl *mqtt.Client) {
	if a.srv == nil {
		return
	}
	old, ok := a.srv.Clients.Get(cl.ID)
	if !ok || old == cl || !old.Closed() || old.IsTakenOver() || !sessionEnds(old) {
		return
	}
	deadline := time.Now().Add(predecessorWait)
	for time.Now().Before(deadline) {
		if cur, ok := a.srv.Clients.Get(cl.ID); !ok || cur != old {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// sessionEnds reports whether cl's session ends with its connection, as Mochi decides it.
func sessionEnds(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}
