package acl

import (
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// Policy answers permission questions. Its zero value is the default policy: rooms are open
// to every user unless whitelist-only, owners and admins manage their rooms, and plain topics
// are open to all.
type Policy struct{}

// CanJoin reports whether id may join room (subscribe to it or its events).
func (Policy) CanJoin(room store.Room, id Identity) bool {
	if id.IsAdmin() || room.Owner == id.User {
		return true
	}
	return !room.WhitelistOnly
}

// CanPost reports whether id may post to room. Posting needs access, not a joined connection.
func (p Policy) CanPost(room store.Room, id Identity) bool { return p.CanJoin(room, id) }

// CanManage reports whether id may manage room (delete it, change its lists and mode).
func (Policy) CanManage(room store.Room, id Identity) bool {
	return id.IsAdmin() || room.Owner == id.User
}

// CanRead reports whether id may read room's history, lists and info: it needs a joined
// connection, or to be the owner or an admin.
func (p Policy) CanRead(room store.Room, id Identity, joined bool) bool {
	return p.CanManage(room, id) || (joined && p.CanJoin(room, id))
}

// CanDirect reports whether from may send a direct message to user to.
func (Policy) CanDirect(from Identity, to string) bool { return from.User != to }

// Decision is the verdict on a topic or filter.
type Decision int

// Verdicts of SubscribeDecision and PublishDecision.
const (
	// Deny refuses the operation.
	Deny Decision = iota
	// Allow permits it as plain MQTT.
	Allow
	// AllowRoom permits it subject to the room's permissions (join or post).
	AllowRoom
)

// SubscribeDecision judges a SUBSCRIBE filter of id. Room filters come back as AllowRoom with
// the room name: the caller checks the room's permissions.
//
// A shared subscription ($share/{group}/{filter}) is judged by its filter; rooms cannot be
// shared, as joining is per connection.
func (p Policy) SubscribeDecision(id Identity, filter string) (Decision, string) {
	if f, ok := wire.SharedFilter(filter); ok {
		d, room := p.SubscribeDecision(id, f)
		if d == AllowRoom {
			return Deny, ""
		}
		return d, room
	}
	if !wire.IsWildcard(filter) {
		t := wire.ParseTopic(filter)
		switch t.Kind {
		case wire.TopicRoom, wire.TopicRoomEvents:
			return AllowRoom, t.Name
		case wire.TopicUserInbox, wire.TopicUserEvents, wire.TopicUserReplies, wire.TopicUserOther:
			if t.Name == id.User || id.IsAdmin() {
				return Allow, ""
			}
			return Deny, ""
		case wire.TopicPresence:
			return Allow, ""
		case wire.TopicRPC, wire.TopicInvalid:
			if id.IsAdmin() && t.Kind == wire.TopicRPC {
				return Allow, ""
			}
			return Deny, ""
		}
		return Allow, ""
	}
	if id.IsAdmin() {
		return Allow, ""
	}
	// Joining is one room at a time; another user's topics and RPC requests are private.
	if wire.FilterReaches(filter, []string{"rooms"}) ||
		wire.FilterReaches(filter, []string{"users", "*"}, id.User) ||
		wire.FilterReaches(filter, []string{"$rpc"}) {
		return Deny, ""
	}
	return Allow, ""
}

// PublishDecision judges a PUBLISH topic of id for the topics a client may publish to
// directly; room messages, direct messages and RPC requests are routed by the caller before.
func (Policy) PublishDecision(id Identity, t wire.Topic) Decision {
	switch t.Kind {
	case wire.TopicPlain:
		return Allow
	case wire.TopicUserOther:
		if t.Name == id.User {
			return Allow
		}
	}
	return Deny
}

// WillAllowed reports whether id may leave a will on topic: not on a broker-only topic, not on
// another user's topics.
func (p Policy) WillAllowed(id Identity, topic string) bool {
	t := wire.ParseTopic(topic)
	switch t.Kind {
	case wire.TopicRoom:
		return true
	case wire.TopicUserInbox:
		return t.Name != id.User
	}
	return p.PublishDecision(id, t) == Allow
}
