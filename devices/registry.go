package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// Notifier publishes what the registry reports. It must not block.
type Notifier interface {
	// UserEvent publishes ev on users/{user}/events.
	UserEvent(user string, ev wire.Event)
	// Presence publishes p, retained, on presence/{p.User}.
	Presence(p wire.Presence)
}

// WillPublisher publishes the will of a connection that ended without DISCONNECT.
type WillPublisher interface {
	PublishWill(ctx context.Context, w Will)
}

// Will is the last will of a connection.
type Will struct {
	// ClientID and User identify the connection that left the will.
	ClientID string
	User     string
	Topic    string
	Payload  []byte
	QoS      byte
	Retain   bool
	// Properties are the v5 user properties of the will.
	Properties [][2]string
	// Delay is the v5 will delay interval.
	Delay time.Duration
}

// Session is one connection of a user on this instance.
type Session struct {
	// ClientID is the MQTT client id.
	ClientID string
	// ID is unique to this connection, so a takeover can tell old from new.
	ID string
	// Identity is the authenticated user.
	Identity acl.Identity
	// ConnectedAt is the time of the CONNACK.
	ConnectedAt time.Time
	// Will is the connection's will, nil for none. The registry clears it (under its lock)
	// when the others took this instance for dead and published the will already.
	Will *Will
}

// Store is what the registry keeps in the shared store: connections, the instances' heartbeats
// and the latest presence of users.
type Store interface {
	store.Connections
	store.Instances
	store.Presences
}

// RoomLeaver ends the room memberships of a connection that an instance failure ended.
type RoomLeaver interface {
	// LeaveRooms makes clientID of user leave every room it has joined.
	LeaveRooms(ctx context.Context, user, clientID string) error
}

// DefaultFailureTimeout is how long an instance may be silent before the others take it for
// dead and clean up after it.
const DefaultFailureTimeout = 15 * time.Second

// Options configure a Registry.
type Options struct {
	// Store keeps connections across instances. Required.
	Store Store
	// Rooms ends the room memberships of the connections of a dead instance. Required.
	Rooms RoomLeaver
	// FailureTimeout is how long after an instance dies the others have cleaned up after it
	// (DefaultFailureTimeout when 0).
	FailureTimeout time.Duration
	// Fenced is called when this instance learns that the others took it for dead (it could
	// not reach the store for too long) and cleaned up after it: its connections are no
	// longer recorded, so it should end them. Their wills were published already.
	// Instance names this broker instance. Required.
	Instance string
	// Notifier publishes presence and echoes. Required.
	Notifier Notifier
	// Wills publishes wills. Required.
	Wills WillPublisher
	// Now returns the current time; nil means time.Now.
	Now    func() time.Time
	Fenced func()
	// Logger receives the registry's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Registry tracks the connections of this instance.
type Registry struct {
	store    Store
	rooms    RoomLeaver
	instance string
	notify   Notifier
	wills    WillPublisher
	now      func() time.Time
	log      *slog.Logger
	fenced   func()
	timing   timing

	mu       sync.Mutex
	sessions map[string]*Session    // by client id
	delayed  map[string]*time.Timer // delayed wills by client id
	closed   bool
	wg       sync.WaitGroup
	stop     chan struct{} // closed by Close: the heartbeat loop ends
}

// New returns a Registry.
func New(opts Options) (*Registry, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("devices: Options.Store is required")
	case opts.Rooms == nil:
		return nil, errors.New("devices: Options.Rooms is required")
	case opts.Instance == "":
		return nil, errors.New("devices: Options.Instance is required")
	case opts.Notifier == nil:
		return nil, errors.New("devices: Options.Notifier is required")
	case opts.Wills == nil:
		return nil, errors.New("devices: Options.Wills is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FailureTimeout <= 0 {
		opts.FailureTimeout = DefaultFailureTimeout
	}
	if opts.Fenced == nil {
		opts.Fenced = func() {}
	}
	return &Registry{
		store:    opts.Store,
		rooms:    opts.Rooms,
		fenced:   opts.Fenced,
		timing:   timingFor(opts.FailureTimeout),
		stop:     make(chan struct{}),
		instance: opts.Instance,
		notify:   opts.Notifier,
		wills:    opts.Wills,
		now:      opts.Now,
		log:      opts.Logger,
		sessions: make(map[string]*Session),
		delayed:  make(map[string]*time.Timer),
	}, nil
}

// Connected records a new connection once its CONNACK is sent. A delayed will of an earlier
// connection with the same client id is cancelled [MQTT-3.1.3-9]. The user's presence and other
// connections learn of it.
func (r *Registry) Connected(ctx context.Context, s *Session) error {
	r.mu.Lock()
	r.cancelWillLocked(s.ClientID)
	r.sessions[s.ClientID] = s
	will := s.Will // fence may clear it
	r.mu.Unlock()

	c := store.Connection{
		ClientID:    s.ClientID,
		Session:     s.ID,
		User:        s.Identity.User,
		Instance:    r.instance,
		ConnectedAt: s.ConnectedAt.UnixMilli(),
	}
	if will != nil {
		w, err := json.Marshal(will)
		if err != nil {
			return fmt.Errorf("record connection %q: encode will: %w", s.ClientID, err)
		}
		c.Will = w
	}
	count, err := r.store.AddConnection(ctx, c)
	if err != nil {
		return fmt.Errorf("record connection %q: %w", s.ClientID, err)
	}
	r.publishPresence(ctx, s.Identity.User, count)
	r.notify.UserEvent(s.Identity.User, wire.NewEvent(wire.EventConnectionEcho, map[string]any{
		"clientId": s.ClientID, "connections": count.N,
	}))
	return nil
}

// Disconnected records the end of a connection. When it ended without DISCONNECT its will is
// published, after its will delay if it has one. Presence and echoes follow.
func (r *Registry) Disconnected(ctx context.Context, s *Session, graceful bool) {
	r.mu.Lock()
	cur, ok := r.sessions[s.ClientID]
	takenOver := ok && cur != s
	if ok && cur == s {
		delete(r.sessions, s.ClientID)
	}
	will := s.Will
	r.mu.Unlock()

	// A delayed will is cancelled by a new connection with the same client id
	// [MQTT-3.1.3-9], which may have arrived before this one finished closing.
	if !graceful && will != nil && !(takenOver && will.Delay > 0) {
		r.scheduleWill(*will)
	}
	removed, left, err := r.store.RemoveConnection(ctx, s.ClientID, s.ID)
	if err != nil {
		r.log.Error("remove connection", "client", s.ClientID, "error", err)
		return
	}
	if !removed {
		return // taken over: the new connection keeps the count
	}
	r.publishPresence(ctx, s.Identity.User, left)
	r.notify.UserEvent(s.Identity.User, wire.NewEvent(wire.EventDisconnectionEcho, map[string]any{
		"clientId": s.ClientID, "connections": left.N,
	}))
}

func (r *Registry) scheduleWill(w Will) {
	if w.Delay <= 0 {
		r.wills.PublishWill(context.Background(), w)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.cancelWillLocked(w.ClientID)
	r.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(w.Delay, func() {
		defer r.wg.Done()
		r.mu.Lock()
		current := r.delayed[w.ClientID] == t
		if current {
			delete(r.delayed, w.ClientID)
		}
		r.mu.Unlock()
		if current {
			r.wills.PublishWill(context.Background(), w)
		}
	})
	r.delayed[w.ClientID] = t
}

// cancelWillLocked cancels the delayed will of clientID, if any. Lock r.mu must be held.
func (r *Registry) cancelWillLocked(clientID string) {
	if t, ok := r.delayed[clientID]; ok {
		if t.Stop() {
			r.wg.Done() // the timer's function will not run
		}
		delete(r.delayed, clientID)
	}
}

// publishPresence publishes the presence of user with count connections, and keeps it in the
// store for instances that start later.
func (r *Registry) publishPresence(ctx context.Context, user string, count store.UserCount) {
	p := wire.Presence{
		User:        user,
		Online:      count.N > 0,
		Connections: count.N,
		Timestamp:   r.now().UnixMilli(),
		Version:     count.Version,
	}
	r.notify.Presence(p)
	payload, err := json.Marshal(p)
	if err != nil {
		return
	}
	if err := r.store.SetPresence(ctx, store.Presence{User: user, Version: count.Version, Payload: payload}); err != nil {
		r.log.Warn("store presence", "user", user, "error", err)
	}
}

// Presences returns the presence of every user the store knows, for an instance that starts.
func (r *Registry) Presences(ctx context.Context) ([]wire.Presence, error) {
	stored, err := r.store.Presences(ctx)
	if err != nil {
		return nil, fmt.Errorf("read presences: %w", err)
	}
	out := make([]wire.Presence, 0, len(stored))
	for _, sp := range stored {
		var p wire.Presence
		if json.Unmarshal(sp.Payload, &p) != nil || p.User != sp.User {
			continue
		}
		p.Version = sp.Version
		out = append(out, p)
	}
	return out, nil
}

// Session returns the connection of clientID on this instance.
func (r *Registry) Session(clientID string) (*Session, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sessions[clientID]
	return s, ok
}

// UserSessions returns the connections of user on this instance, sorted by client id.
func (r *Registry) UserSessions(user string) []*Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Session
	for _, s := range r.sessions {
		if s.Identity.User == user {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out
}

// UserConnections returns the connections of user on all instances.
func (r *Registry) UserConnections(ctx context.Context, user string) ([]store.Connection, error) {
	conns, err := r.store.UserConnections(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("connections of %q: %w", user, err)
	}
	return conns, nil
}

// Close stops the heartbeats and the delayed wills that are still waiting, and waits for any
// being published. It does not remove the instance from the store: Deregister does, once the
// connections are closed.
func (r *Registry) Close() {
	r.mu.Lock()
	if !r.closed {
		close(r.stop)
	}
	r.closed = true
	for id := range r.delayed {
		r.cancelWillLocked(id)
	}
	r.mu.Unlock()
	r.wg.Wait()
}
