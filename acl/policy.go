package acl

import (
	"strings"

	"github.com/roomq/roomq/wire"
)

// Policy answers permission questions. Its zero value is the development policy: plain topics
// are open to all. Room and direct-message decisions are in access.go.
type Policy struct {
	// Rules judge plain topics (outside rooms/, users/, presence/ and $rpc/) for users without
	// the admin role; nil allows every plain topic.
	Rules *Rules
}

func (p Policy) plainSubscribe(id Identity, clientID, filter string) Decision {
	if p.Rules == nil || p.Rules.Subscribe(id.User, clientID, filter) {
		return Allow
	}
	return Deny
}

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
//
// clientID is the subscribing connection, for the %c placeholder of the topic rules.
func (p Policy) SubscribeDecision(id Identity, clientID, filter string) (Decision, string) {
	if f, ok := wire.SharedFilter(filter); ok {
		d, room := p.SubscribeDecision(id, clientID, f)
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
		if id.IsAdmin() {
			return Allow, ""
		}
		return p.plainSubscribe(id, clientID, filter), ""
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
	// What is left reaches the user's own topics, presence, or plain topics.
	if strings.HasPrefix(filter, wire.UserNamespace(id.User)) || strings.HasPrefix(filter, wire.PresencePrefix) {
		return Allow, ""
	}
	return p.plainSubscribe(id, clientID, filter), ""
}

// PublishDecision judges a PUBLISH topic of id for the topics a client may publish to
// directly; room messages, direct messages and RPC requests are routed by the caller before.
//
// topic is the topic name t was parsed from; clientID is the publishing connection.
func (p Policy) PublishDecision(id Identity, clientID, topic string, t wire.Topic) Decision {
	switch t.Kind {
	case wire.TopicPlain:
		if id.IsAdmin() || p.Rules == nil || p.Rules.Publish(id.User, clientID, topic) {
			return Allow
		}
		return Deny
	case wire.TopicUserOther:
		if t.Name == id.User {
			return Allow
		}
	}
	return Deny
}

// WillAllowed reports whether id may leave a will on topic: not on a broker-only topic, not on
// another user's topics.
func (p Policy) WillAllowed(id Identity, clientID, topic string) bool {
	t := wire.ParseTopic(topic)
	switch t.Kind {
	case wire.TopicRoom:
		return true
	case wire.TopicUserInbox:
		return t.Name != id.User
	}
	return p.PublishDecision(id, clientID, topic, t) == Allow
}
