package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"

	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// LocalRooms reads this broker's rooms; *rooms.Service implements it.
type LocalRooms interface {
	// HistoryInfo describes a room's history.
	HistoryInfo(ctx context.Context, room string) (rooms.HistoryInfo, error)
	// History returns the messages after an id, ascending.
	History(ctx context.Context, room string, after uint64, limit int) ([]*rooms.Message, error)
}

// LocalPoster posts room messages on this broker; *commands.Service implements it.
type LocalPoster interface {
	// PostRoomFrom posts payload to room as the caller, with the message's origin.
	PostRoomFrom(ctx context.Context, c commands.Caller, room string, payload []byte, from wire.Origin) (*rooms.Message, error)
}

// LocalMQTT is how a bridge connects to this broker for its plain topic mappings.
type LocalMQTT struct {
	// URL is this broker's MQTT listener, e.g. tcp://127.0.0.1:1883.
	URL string
	// User and Password are the bridge's credentials here.
	User     string
	Password []byte
	// ClientID is the bridge's client id here, to which each connection adds "-N"; empty
	// means "bridge-" + Config.Name.
	ClientID string
}

// Options configure a Bridge.
type Options struct {
	// Config is the bridge's configuration. Required.
	Config Config
	// Rooms and Poster are this broker's rooms; required when Config has room mappings.
	Rooms  LocalRooms
	Poster LocalPoster
	// Feed wakes the out direction of room mappings when a message is appended; nil means
	// polling every Poll only.
	Feed store.Feed
	// Poll is how often the out direction of room mappings looks for new messages besides
	// the feed's wake-ups (default 1 s).
	Poll time.Duration
	// Local is the connection to this broker for plain topic mappings.
	Local LocalMQTT
	// Logger receives the bridge's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Bridge is one link to another broker. Build it with New and run it with Run.
type Bridge struct {
	cfg    Config
	rooms  LocalRooms
	poster LocalPoster
	feed   store.Feed
	poll   time.Duration
	local  LocalMQTT
	log    *slog.Logger

	links []*roomLink
	queue chan outMessage // plain messages for the far side

	running atomic.Bool

	in, out, dropped atomic.Uint64

	mu sync.Mutex
	// topicsUp and roomsUp are true while the far side's connection for plain topics
	// (autopaho) and for rooms (a roomq client) are up; since is when the last came up.
	topicsUp, roomsUp bool
	since             time.Time
	lastErr           string
	lastErrAt         time.Time
	localUp           bool
	// remoteSubs and localSubs are true while the plain topic subscriptions of the current
	// connections are in place.
	remoteSubs, localSubs bool
	localCM               *autopaho.ConnectionManager
	connections           uint64
}

// New returns a Bridge for opts, after checking its configuration.
func New(opts Options) (*Bridge, error) {
	cfg := opts.Config
	cfg.Topics = append([]TopicMapping(nil), cfg.Topics...)
	cfg.Rooms = append([]RoomMapping(nil), cfg.Rooms...)
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if len(cfg.Rooms) > 0 && (opts.Rooms == nil || opts.Poster == nil) {
		return nil, fmt.Errorf("%w: bridge %q maps rooms: Options.Rooms and Options.Poster are required", ErrConfig, cfg.Name)
	}
	if len(cfg.Topics) > 0 && opts.Local.URL == "" {
		return nil, fmt.Errorf("%w: bridge %q maps topics: Options.Local.URL is required", ErrConfig, cfg.Name)
	}
	if opts.Local.ClientID == "" {
		opts.Local.ClientID = "bridge-" + cfg.Name
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Bridge{
		cfg:    cfg,
		rooms:  opts.Rooms,
		poster: opts.Poster,
		feed:   opts.Feed,
		poll:   opts.Poll,
		local:  opts.Local,
		log:    opts.Logger.With(logKeyBridge, cfg.Name),
		queue:  make(chan outMessage, cfg.QueueSize),
	}
	for _, m := range cfg.Rooms {
		b.links = append(b.links, newRoomLink(b, m))
	}
	b.remoteSubs = !b.hasInTopics()
	b.localSubs = true
	for _, m := range cfg.Topics {
		if m.Direction.out() {
			b.localSubs = false
		}
	}
	return b, nil
}

// Name returns the bridge's name (Config.Name).
func (b *Bridge) Name() string { return b.cfg.Name }

// Run runs the bridge until ctx ends: it connects, reconnects with backoff and carries
// messages. It returns nil when ctx ended, or an error when the bridge could not start (or
// runs already). Every goroutine it starts has ended when it returns.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer b.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before wg.Wait: the goroutines end with ctx

	for _, l := range b.links {
		if l.m.Direction.out() {
			l.startOut(ctx) // messages posted from now on go; runOut tries again on failure
		}
	}
	if len(b.cfg.Topics) > 0 {
		r, err := b.startRemote(ctx, &wg)
		if err != nil {
			return err
		}
		if err := b.startLocal(ctx, &wg, r); err != nil {
			return err
		}
	}
	if len(b.links) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.runRooms(ctx)
		}()
	}
	<-ctx.Done()
	return nil
}

// linkUp records that a connection to the far side came up; up is topicsUp or roomsUp.
func (b *Bridge) linkUp(up *bool) {
	b.mu.Lock()
	*up, b.since = true, time.Now()
	b.connections++
	b.mu.Unlock()
}

// connectedLocked reports whether every connection the bridge needs to the far side is up.
// Lock mu must be held.
func (b *Bridge) connectedLocked() bool {
	return (len(b.cfg.Topics) == 0 || b.topicsUp) && (len(b.links) == 0 || b.roomsUp)
}

// Status is the state of a bridge's link.
type Status struct {
	// Name is the bridge's name and URL its far side.
	Name string `json:"name"`
	URL  string `json:"url"`
	// Connected is true while the link to the far side is up (its connection for plain
	// topics and its connection for rooms, when it has mappings of either), since Since.
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since"`
	// LocalConnected is true while the connection to this broker (plain topics) is up.
	LocalConnected bool `json:"localConnected"`
	// TopicsReady is true while the plain topic mappings are subscribed on both sides.
	TopicsReady bool `json:"topicsReady"`
	// Queued counts the plain messages waiting for the far side.
	Queued int `json:"queued"`
	// Connections counts the connections made to the far side (of both kinds).
	Connections uint64 `json:"connections"`
	// LastError is the last connection or delivery error, at LastErrorAt.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	// MessagesIn and MessagesOut count the messages carried to this broker and to the far
	// side; Dropped those given up (refused, or a full queue).
	MessagesIn  uint64 `json:"messagesIn"`
	MessagesOut uint64 `json:"messagesOut"`
	Dropped     uint64 `json:"dropped"`
	// Rooms are the positions of the room mappings.
	Rooms []RoomStatus `json:"rooms"`
}

// RoomStatus is the state of one room mapping.
type RoomStatus struct {
	// Local and Remote are the mapped rooms.
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// Direction is the mapping's direction.
	Direction Direction `json:"direction"`
	// Joined is true while the remote room is subscribed on the current connection.
	Joined bool `json:"joined"`
	// LastOut is the id of the last local message the far side has (or that needed not go);
	// LastIn the id of the last remote message bridged in (or skipped), in history epoch
	// RemoteEpoch.
	LastOut     uint64 `json:"lastOut"`
	LastIn      uint64 `json:"lastIn"`
	RemoteEpoch string `json:"remoteEpoch,omitempty"`
}

// Status returns the bridge's state.
func (b *Bridge) Status() Status {
	b.mu.Lock()
	s := Status{
		Name: b.cfg.Name, URL: b.cfg.URL,
		Connected: b.connectedLocked(), Since: b.since, LocalConnected: b.localUp, Connections: b.connections,
		LastError: b.lastErr, LastErrorAt: b.lastErrAt,
		TopicsReady: len(b.cfg.Topics) > 0 && b.topicsUp && b.localUp && b.remoteSubs && b.localSubs,
	}
	b.mu.Unlock()
	s.MessagesIn, s.MessagesOut, s.Dropped = b.in.Load(), b.out.Load(), b.dropped.Load()
	s.Queued = len(b.queue)
	for _, l := range b.links {
		s.Rooms = append(s.Rooms, l.status())
	}
	return s
}

// fail records err as the bridge's last error.
func (b *Bridge) fail(err error) {
	b.mu.Lock()
	b.lastErr, b.lastErrAt = err.Error(), time.Now()
	b.mu.Unlock()
}

// Log keys.
const (
	logKeyBridge = "bridge"
	logKeyRoom   = "room"
	logKeyTopic  = "topic"
	logKeyID     = "id"
	logKeyError  = "error"
	logKeyURL    = "url"
)
