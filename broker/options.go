package broker

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/devices"
	"github.com/roomq/roomq/hooks"
	"github.com/roomq/roomq/metrics"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
)

// Defaults of Options.
const (
	DefaultMQTTAddr          = ":1883"
	DefaultHTTPAddr          = ":8080"
	DefaultMaxPacketSize     = 1 << 20
	DefaultShutdownGrace     = 10 * time.Second
	DefaultRoomCheckInterval = 5 * time.Second
	DefaultMaxPendingWrites  = 1024
	DefaultWriteDelay        = time.Millisecond
	DefaultFailureTimeout    = devices.DefaultFailureTimeout
	DefaultGeneralRoom       = "general"
	DefaultAdminUser         = "admin"
	defaultReadHeaderTime    = 10 * time.Second
)

// Options configure a Broker. The zero value is the development default of docs/protocol.md
// except for the addresses, which DefaultOptions fills in.
type Options struct {
	// MQTTAddr is the MQTT over TCP listen address; empty disables the listener.
	MQTTAddr string
	// HTTPAddr is the HTTP listen address (/mqtt, /metrics, /healthz, /readyz); empty
	// disables it.
	HTTPAddr string
	// MQTTTLSAddr is the listen address of MQTT over TLS (usually ":8883"); it needs TLS.
	MQTTTLSAddr string
	// TLS holds the certificates of the TLS listeners; nil means no TLS.
	TLS *tls.Config
	// HTTPTLS serves HTTP, and so MQTT over WebSocket (wss://), with TLS; it needs TLS.
	HTTPTLS bool
	// AllowedOrigins lists the browser origins, besides the broker's own host, allowed to open
	// MQTT over WebSocket; "*" allows all.
	AllowedOrigins []string
	// InstanceID names this instance; empty means a random id. An instance that restarts with
	// the same id cleans up what its earlier run left in the store at once; one with a new id
	// leaves that to the failure timeout.
	InstanceID string
	// ReplyTimeout is how long a client that received a device-to-device request may publish
	// its answer to the request's response topic under users/{user}/replies/ (default 60 s).
	ReplyTimeout time.Duration
	// FailureTimeout is how long after an instance dies the others have published its
	// clients' wills and presence and ended their room memberships (default 15 s).
	FailureTimeout time.Duration

	// Store keeps the shared state; nil means a new in-memory store. The broker closes it.
	Store store.Store
	// Authenticator checks credentials; nil means development mode (acl.DevAuth) with the
	// users in Admins as admins.
	Authenticator acl.Authenticator
	// Admins are the users with the admin role in development mode (default ["admin"]).
	Admins []string
	// TopicRules judge plain topics (outside the reserved namespaces) for users without the
	// admin role; nil allows every plain topic (the development default).
	TopicRules *acl.Rules
	// Checkers holds the message checkers, including custom ones; nil means the built-ins.
	Checkers *rooms.Checkers

	// Rooms are created at start when missing (default: "general", owner "admin", text).
	Rooms []store.Room
	// RoomCheckInterval is how often the broker checks that the rooms of Rooms still exist,
	// creating again those the store lost (default 5 s).
	RoomCheckInterval time.Duration
	// NoDefaultRooms disables the default rooms when Rooms is empty.
	NoDefaultRooms bool
	// RoomsManagement lets every user create rooms with roomCreate.
	RoomsManagement bool
	// NotifyUserlist and NotifyAccessLists are the notification settings of the rooms the
	// broker creates: those in Rooms and those created with roomCreate.
	NotifyUserlist    bool
	NotifyAccessLists bool
	// HistoryMaxSize is the history ring size per room (default 10000).
	HistoryMaxSize int
	// HistoryMaxGetMessages caps one history read (default 100).
	HistoryMaxGetMessages int

	// ListLimit caps the users on one access list (default 10000).
	ListLimit int
	// MaxRoomsPerUser caps the rooms a user (not a global admin) may create; 0: no limit.
	MaxRoomsPerUser int
	// MaxRoomMessageSize is the largest room message payload, in bytes, of the rooms that
	// set no limit of their own (store.Room.MaxMessageSize); 0 leaves only MaxPacketSize.
	MaxRoomMessageSize int

	// MaxPacketSize is the largest MQTT packet accepted, in bytes (default 1 MiB).
	MaxPacketSize uint32
	// MaxConnectionsPerUser refuses a user's connections beyond this many (CONNACK 0x97);
	// 0 means no limit. Global admins are not limited.
	MaxConnectionsPerUser int
	// MaxSubscriptionsPerConnection refuses a connection's filters beyond this many (SUBACK
	// 0x97); 0 means no limit.
	MaxSubscriptionsPerConnection int
	// PublishRate limits the PUBLISH packets per second of one connection, with bursts of
	// PublishBurst (default: the rate); 0 means no limit.
	PublishRate  float64
	PublishBurst int
	// MaxQueued is how many packets a connection may fall behind before it is disconnected.
	MaxQueued int
	// WriteDelay is how long a connection's writer waits, after a write, for more room
	// messages to write together: fewer system calls at high fan-out, for up to WriteDelay
	// more latency. The first message after a quiet moment, and any event, RPC answer or
	// direct message, is written at once. 0 writes each as soon as it can. DefaultOptions
	// sets DefaultWriteDelay.
	WriteDelay time.Duration
	// MaxPendingWrites is how many messages of plain topics may wait to be written to one
	// connection; more are dropped for it (default DefaultMaxPendingWrites). Mochi reserves
	// 8 bytes of every connection per slot. The retained messages of a SUBSCRIBE are not
	// limited by it.
	MaxPendingWrites int
	// ShutdownGrace bounds Shutdown when its context has no deadline (default 10 s).
	ShutdownGrace time.Duration

	// Hooks run before and after every command and its native MQTT equivalents, and when
	// clients connect, disconnect, join and leave rooms (see docs/api.md); nil means none.
	// Register them before Start.
	Hooks *commands.Hooks
	// AdminToken is the bearer token of the admin HTTP API under /api/ (docs/api.md); empty
	// turns the API off.
	AdminToken string

	// Logger receives the broker's logs; nil means slog.Default().
	Logger *slog.Logger
	// Metrics receives the broker's Prometheus metrics, served on GET /metrics; nil means new
	// ones (metrics.New). The broker sets their instance and commands, and times its store;
	// give each broker its own.
	Metrics *metrics.Metrics
}

// DefaultOptions returns the options of `go run ./cmd/broker` with no configuration.
func DefaultOptions() Options {
	return Options{
		MQTTAddr:          DefaultMQTTAddr,
		HTTPAddr:          DefaultHTTPAddr,
		RoomsManagement:   true,
		NotifyUserlist:    true,
		NotifyAccessLists: true,
		FailureTimeout:    DefaultFailureTimeout,
		ReplyTimeout:      hooks.DefaultReplyTimeout,
		MaxPendingWrites:  DefaultMaxPendingWrites,
		WriteDelay:        DefaultWriteDelay,
	}
}
