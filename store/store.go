package store

import (
	"context"
	"time"
)

// Room holds a room's settings.
type Room struct {
	// Name is the room name (see wire.ValidName).
	Name string
	// Owner is the user who created the room.
	Owner string
	// Checker names the message checker of the room ("text", "json", "binary" or a custom one).
	Checker string
	// WhitelistOnly is true when only whitelisted users (and the owner and admins) may join.
	WhitelistOnly bool
	// NotifyAccessLists enables accessListChanged and modeChanged events on rooms/{room}/events.
	NotifyAccessLists bool
	// NotifyUserlist enables userJoined and userLeft events on rooms/{room}/events.
	NotifyUserlist bool
	// MaxMessageSize is the largest message payload the room accepts, in bytes; 0 means the
	// broker's packet size limit alone.
	MaxMessageSize int
	// CreatedAt is the creation time in milliseconds since the Unix epoch.
	CreatedAt int64
}

// Message is a stored room message.
type Message struct {
	// ID is the message id: 1 for a room's first message, then growing by exactly 1.
	// Append sets it; callers leave it zero.
	ID uint64
	// Author is the user who posted the message.
	Author string
	// Timestamp is the time the message was accepted, in milliseconds since the Unix epoch.
	Timestamp int64
	// Binary is true when Payload is opaque bytes; otherwise Payload is a JSON object without
	// the keys id, author and timestamp.
	Binary bool
	// Payload is the message content as accepted by the room's checker.
	Payload []byte
	// OriginBroker and OriginID say where a bridged message was first posted: the name of
	// that broker and the message's id there. Both are empty for a message posted here.
	OriginBroker string
	OriginID     uint64
}

// HistoryInfo describes a room's history.
type HistoryInfo struct {
	// LastID is the id of the newest message ever appended, 0 when there is none.
	LastID uint64
	// FirstID is the id of the oldest message still stored, 0 when the history is empty.
	FirstID uint64
	// Size is the number of messages stored.
	Size int
	// Epoch changes whenever the continuity of the history is lost, for example when the room
	// is created again or the store lost its data.
	Epoch string
}

// Connection is one MQTT connection of a user.
type Connection struct {
	// ClientID is the MQTT client identifier; it is unique in the cluster.
	ClientID string
	// Session identifies this connection among the connections that have used ClientID, so
	// that removing a taken-over connection does not remove its successor.
	Session string
	// User is the authenticated user.
	User string
	// Instance names the broker instance that holds the connection.
	Instance string
	// ConnectedAt is the connection time in milliseconds since the Unix epoch.
	ConnectedAt int64
	// Will is the connection's last will, encoded by the caller; nil for none. It is kept so
	// that another instance can publish it when the instance holding the connection dies;
	// only InstanceConnections returns it.
	Will []byte
}

// UserCount is how many connections a user has. Version orders the counts of one user: of
// two counts, the one with the higher Version was taken later, so that counts reported out of
// order (by several instances) can be put back in order.
type UserCount struct {
	N       int
	Version uint64
}

// Rooms stores room settings.
type Rooms interface {
	// CreateRoom creates a room with a fresh history and epoch. It returns ErrRoomExists when
	// the name is taken.
	CreateRoom(ctx context.Context, room Room) error
	// Room returns a room's settings, or ErrNoRoom.
	Room(ctx context.Context, name string) (Room, error)
	// DeleteRoom deletes a room with its history and membership, or returns ErrNoRoom.
	DeleteRoom(ctx context.Context, name string) error
	// RoomNames returns the names of all rooms, sorted.
	RoomNames(ctx context.Context) ([]string, error)
	// CountOwnedRooms returns how many rooms owner owns.
	CountOwnedRooms(ctx context.Context, owner string) (int, error)
}

// History stores the message history of rooms.
type History interface {
	// Append gives m the room's next id, stores it with that id and drops the oldest messages
	// beyond maxSize (at least 1), as one atomic step. It returns the stored message, or
	// ErrNoRoom.
	Append(ctx context.Context, room string, m Message, maxSize int) (Message, error)
	// AppendBatch appends ms in order, as Append does each, in one round trip where the store
	// has round trips; each message is appended atomically, not the batch. It returns the
	// stored messages of the appends that succeeded, in order, and the error of the first
	// that failed (the ones after it are not appended).
	AppendBatch(ctx context.Context, room string, ms []Message, maxSize int) ([]Message, error)
	// Range returns the stored messages with an id greater than afterID, ascending, at most
	// limit of them. It returns ErrNoRoom for a room that does not exist.
	Range(ctx context.Context, room string, afterID uint64, limit int) ([]Message, error)
	// Recent returns the newest limit stored messages, ascending.
	Recent(ctx context.Context, room string, limit int) ([]Message, error)
	// HistoryInfo describes a room's history, or returns ErrNoRoom.
	HistoryInfo(ctx context.Context, room string) (HistoryInfo, error)
}

// RangeViewer is a History that can show a range of messages without copying them, as the
// memory store can. Callers check for it and fall back to History.Range.
type RangeViewer interface {
	// ViewRange calls view with the messages Range would return, or returns Range's error.
	// The messages' payloads are the stored ones: view must not change them, nor keep them or
	// the slice after it returns. view runs without the store's locks held; its error is
	// returned.
	ViewRange(ctx context.Context, room string, afterID uint64, limit int, view func([]Message) error) error
}

// Connections stores the connections of users, across instances.
type Connections interface {
	// AddConnection records c and returns how many connections c.User now has. A connection
	// with the same ClientID is replaced (a takeover) and not counted twice.
	AddConnection(ctx context.Context, c Connection) (UserCount, error)
	// RemoveConnection removes the connection of clientID if its Session is session. It
	// returns whether it removed one and how many connections its user has left; left is
	// meaningful only when removed is true. The connection's room memberships are left to the
	// caller.
	RemoveConnection(ctx context.Context, clientID, session string) (removed bool, left UserCount, err error)
	// UserConnections returns a user's connections, sorted by ClientID.
	UserConnections(ctx context.Context, user string) ([]Connection, error)
}

// Members stores which connections have joined which rooms.
type Members interface {
	// Join records that clientID of user joined room, and at as the user's last-seen time
	// there when that changed anything. It returns how many of the user's connections are
	// joined to the room afterwards and whether this call changed anything (false when the
	// connection was joined already). It returns ErrNoRoom for a missing room. Membership
	// belongs to the client id: a join by another user moves it.
	Join(ctx context.Context, room, user, clientID string, at int64) (count int, changed bool, err error)
	// Leave records that clientID of user left room, like Join. It returns how many of the
	// user's connections are still joined and whether this call changed anything (false when
	// clientID was not joined as user). Leaving a room that does not exist is no error.
	Leave(ctx context.Context, room, user, clientID string, at int64) (count int, changed bool, err error)
	// RoomUsers returns the users with at least one joined connection, sorted, or ErrNoRoom.
	RoomUsers(ctx context.Context, room string) ([]string, error)
	// ClientRooms returns the rooms clientID has joined, sorted (empty for an unknown id).
	ClientRooms(ctx context.Context, clientID string) ([]string, error)
	// UserSeen reports whether user has a connection joined to room, and the time in
	// milliseconds of the user's last join or leave there (0 when never seen).
	UserSeen(ctx context.Context, room, user string) (joined bool, at int64, err error)
}

// Names of access lists.
const (
	ListAdmins    = "adminlist"
	ListBlacklist = "blacklist"
	ListWhitelist = "whitelist"
)

// Scope names whose access lists and mode a call is about: a room's, or a user's
// direct-message lists. Exactly one of its fields is set.
type Scope struct {
	Room string
	User string
}

// RoomScope is the scope of a room's lists.
func RoomScope(room string) Scope { return Scope{Room: room} }

// DirectScope is the scope of a user's direct-message lists.
func DirectScope(user string) Scope { return Scope{User: user} }

// Listed tells which lists of a scope hold a user.
type Listed struct {
	Admin       bool
	Blacklisted bool
	Whitelisted bool
}

// AccessLists stores the access lists and whitelist-only modes of rooms and users. A room's
// lists go with the room (DeleteRoom removes them, a missing room gives ErrNoRoom); a user's
// lists exist for every user.
type AccessLists interface {
	// ListAdd adds users to a list and returns those that were not on it, in the given order.
	// It returns ErrListLimit, changing nothing, when the list would hold more than limit
	// users (limit <= 0: no limit).
	ListAdd(ctx context.Context, scope Scope, list string, users []string, limit int) ([]string, error)
	// ListRemove removes users from a list and returns those that were on it.
	ListRemove(ctx context.Context, scope Scope, list string, users []string) ([]string, error)
	// ListUsers returns the users on a list, sorted.
	ListUsers(ctx context.Context, scope Scope, list string) ([]string, error)
	// SetWhitelistOnly sets the mode of a scope and reports whether it changed. For a room
	// it is the room's WhitelistOnly setting.
	SetWhitelistOnly(ctx context.Context, scope Scope, on bool) (bool, error)
	// Access returns the mode of a scope and the lists that hold user, in one step. For a room
	// it also returns the room (for a user scope, Room is zero).
	Access(ctx context.Context, scope Scope, user string) (Room, bool, Listed, error)
}

// Feed carries the messages appended to rooms to every instance that listens, so that an
// instance can deliver to its own subscribers the messages other instances accepted.
type Feed interface {
	// SubscribeRoom calls deliver with the messages appended to room by any instance (this one
	// included) after SubscribeRoom returns, until cancel is called; cancel waits until no
	// call of deliver is running. Calls to deliver are sequential, but a message may come
	// late, twice, or after a later one: callers sequence them by id (and fill gaps from the
	// history). epoch is the room history's epoch when the message was appended. deliver must
	// not block for long.
	SubscribeRoom(ctx context.Context, room string, deliver func(m Message, epoch string)) (cancel func(), err error)
}

// Broadcaster carries small messages from one instance to every instance (itself included):
// the broker's user-level traffic (direct messages, events, presence). Delivery is at most
// once and may miss messages sent while an instance is disconnected from the store.
type Broadcaster interface {
	// Broadcast sends payload to every subscriber of every instance.
	Broadcast(ctx context.Context, payload []byte) error
	// SubscribeBroadcast calls deliver, sequentially, with every payload broadcast after it
	// returns, until cancel is called; cancel waits until no call of deliver is running.
	SubscribeBroadcast(ctx context.Context, deliver func(payload []byte)) (cancel func(), err error)
}

// Instances tracks which broker instances are alive, so that the survivors clean up after an
// instance that died: they find its connections, publish their wills and presence, and end
// their room memberships. Times are the store's clock, which all instances share.
type Instances interface {
	// Heartbeat records that instance is alive for ttl from now. It reports whether the
	// instance's record continued: false for its first heartbeat, and for one that comes
	// after others took the instance for dead (they claimed it, and may have cleaned up
	// after it). A heartbeat that comes late but before anybody claimed the instance
	// continues the record.
	Heartbeat(ctx context.Context, instance string, ttl time.Duration) (wasAlive bool, err error)
	// ClaimDeadInstance returns an instance whose heartbeat expired and that nobody has
	// claimed in the last lease, and claims it for lease; "" when there is none. Of several
	// callers at once, one gets each dead instance.
	ClaimDeadInstance(ctx context.Context, lease time.Duration) (string, error)
	// ReleaseDeadInstance forgets a claimed instance, with its routes, once it is cleaned up;
	// a heartbeat that came in the meantime keeps it alive, routes included.
	ReleaseDeadInstance(ctx context.Context, instance string) error
	// RemoveInstance forgets an instance that stopped gracefully, with its routes.
	RemoveInstance(ctx context.Context, instance string) error
	// InstanceConnections returns the connections held by instance, sorted by ClientID.
	InstanceConnections(ctx context.Context, instance string) ([]Connection, error)
}

// Presence is the latest presence message of a user.
type Presence struct {
	User string
	// Version is the Version of the UserCount the message reports.
	Version uint64
	// Payload is the message, encoded by the caller.
	Payload []byte
}

// Presences keeps the latest presence message of every user, so that an instance that starts
// later knows the presence of users connected elsewhere.
type Presences interface {
	// SetPresence stores p unless a presence of p.User with a higher Version is stored.
	SetPresence(ctx context.Context, p Presence) error
	// Presences returns the stored presence of every user, in no particular order.
	Presences(ctx context.Context) ([]Presence, error)
}

// RetainedMessage is the retained message of a plain topic.
type RetainedMessage struct {
	Topic string
	// Version orders the retained messages of all topics: a later one has a higher version.
	Version uint64
	// Message is the message, encoded by the caller.
	Message []byte
}

// Retained keeps the retained messages of plain topics, so that every instance, including one
// that starts later, has them.
type Retained interface {
	// SetRetained stores message as the retained message of topic, or removes the retained
	// message of topic when message is nil, and returns the version of the change: of two
	// changes, the later one has the higher version.
	SetRetained(ctx context.Context, topic string, message []byte) (uint64, error)
	// RetainedMessages returns every retained message, in no particular order.
	RetainedMessages(ctx context.Context) ([]RetainedMessage, error)
}

// Replies keeps the rights of clients to answer the requests they received: a client that was
// delivered a request with a response topic under users/{user}/replies/ may publish there
// once, for a while, on any instance.
type Replies interface {
	// GrantReply lets clientID publish once to topic within ttl.
	GrantReply(ctx context.Context, clientID, topic string, ttl time.Duration) error
	// UseReply spends one of clientID's unexpired rights to publish to topic, and reports
	// whether it had one.
	UseReply(ctx context.Context, clientID, topic string) (bool, error)
}

// Routes records which topic filters each instance has subscribers for, and carries messages
// to one instance: what a client publishes to a plain topic goes to the instances with a
// matching filter only.
type Routes interface {
	// AddRoute records that instance has subscribers for filter.
	AddRoute(ctx context.Context, instance, filter string) error
	// SetRoutes replaces the filters of instance.
	SetRoutes(ctx context.Context, instance string, filters []string) error
	// Routes returns the filters of every instance with a heartbeat (see Instances), with an
	// empty list for an instance without any.
	Routes(ctx context.Context) (map[string][]string, error)
	// SendTo sends payload to the subscribers of instance's mailbox. Like Broadcast, it is at
	// most once; the messages that one caller sends to one instance arrive in order.
	SendTo(ctx context.Context, instance string, payload []byte) error
	// SubscribeMailbox calls deliver, sequentially, with every payload sent to instance after
	// it returns, until cancel is called; cancel waits until no call of deliver is running.
	SubscribeMailbox(ctx context.Context, instance string, deliver func(payload []byte)) (cancel func(), err error)
}

// Store is the whole of the broker's shared state.
type Store interface {
	Feed
	Broadcaster
	Rooms
	History
	Connections
	Instances
	Presences
	Retained
	Replies
	Routes
	Members
	AccessLists
	// Ping reports whether the store can serve requests.
	Ping(ctx context.Context) error
	// Close releases the store's resources. It may be called more than once.
	Close() error
}
