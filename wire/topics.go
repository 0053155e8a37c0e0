package wire

import "strings"

// Topic prefixes and suffixes of the reserved namespaces.
const (
	RoomsPrefix    = "rooms/"
	UsersPrefix    = "users/"
	PresencePrefix = "presence/"
	RPCPrefix      = "$rpc/"

	eventsLevel  = "events"
	inboxLevel   = "inbox"
	repliesLevel = "replies"
)

// TopicKind tells which part of the namespace a topic belongs to.
type TopicKind int

// The kinds of topics of docs/protocol.md.
const (
	// TopicPlain is any topic outside the reserved namespaces.
	TopicPlain TopicKind = iota
	// TopicRoom is rooms/{room}: room messages.
	TopicRoom
	// TopicRoomEvents is rooms/{room}/events: broker notifications about a room.
	TopicRoomEvents
	// TopicUserInbox is users/{user}/inbox: direct messages.
	TopicUserInbox
	// TopicUserEvents is users/{user}/events: echoes and notifications for a user.
	TopicUserEvents
	// TopicUserReplies is users/{user}/replies/...: RPC responses.
	TopicUserReplies
	// TopicUserOther is any other topic under users/{user}/, private to that user.
	TopicUserOther
	// TopicPresence is presence/{user}: retained online state.
	TopicPresence
	// TopicRPC is $rpc/{command}: RPC requests to the broker.
	TopicRPC
	// TopicInvalid is a topic inside a reserved namespace that has no meaning there, such as
	// rooms/a/b or users/$x/inbox. Nobody may use it.
	TopicInvalid
)

// Topic is a parsed topic name.
type Topic struct {
	Kind TopicKind
	// Name is the room of room topics, the user of users/ and presence/ topics, and the
	// command of $rpc/ topics.
	Name string
}

// ParseTopic classifies a topic name (not a filter).
func ParseTopic(topic string) Topic {
	switch {
	case strings.HasPrefix(topic, RoomsPrefix):
		rest := topic[len(RoomsPrefix):]
		name, sub, hasSub := strings.Cut(rest, "/")
		if !ValidName(name) {
			return Topic{Kind: TopicInvalid}
		}
		if !hasSub {
			return Topic{Kind: TopicRoom, Name: name}
		}
		if sub == eventsLevel {
			return Topic{Kind: TopicRoomEvents, Name: name}
		}
		return Topic{Kind: TopicInvalid}
	case strings.HasPrefix(topic, UsersPrefix):
		rest := topic[len(UsersPrefix):]
		name, sub, _ := strings.Cut(rest, "/")
		if !ValidName(name) {
			return Topic{Kind: TopicInvalid}
		}
		switch {
		case sub == inboxLevel:
			return Topic{Kind: TopicUserInbox, Name: name}
		case sub == eventsLevel:
			return Topic{Kind: TopicUserEvents, Name: name}
		case sub == repliesLevel || strings.HasPrefix(sub, repliesLevel+"/"):
			return Topic{Kind: TopicUserReplies, Name: name}
		default:
			return Topic{Kind: TopicUserOther, Name: name}
		}
	case strings.HasPrefix(topic, PresencePrefix):
		name := topic[len(PresencePrefix):]
		if !ValidName(name) {
			return Topic{Kind: TopicInvalid}
		}
		return Topic{Kind: TopicPresence, Name: name}
	case strings.HasPrefix(topic, RPCPrefix):
		name := topic[len(RPCPrefix):]
		if name == "" || strings.Contains(name, "/") {
			return Topic{Kind: TopicInvalid}
		}
		return Topic{Kind: TopicRPC, Name: name}
	case topic == "rooms" || topic == "users" || topic == "presence" || topic == "$rpc":
		return Topic{Kind: TopicInvalid}
	}
	return Topic{Kind: TopicPlain}
}

// RoomTopic returns rooms/{room}.
func RoomTopic(room string) string { return RoomsPrefix + room }

// RoomEventsTopic returns rooms/{room}/events.
func RoomEventsTopic(room string) string { return RoomsPrefix + room + "/" + eventsLevel }

// UserInboxTopic returns users/{user}/inbox.
func UserInboxTopic(user string) string { return UsersPrefix + user + "/" + inboxLevel }

// UserEventsTopic returns users/{user}/events.
func UserEventsTopic(user string) string { return UsersPrefix + user + "/" + eventsLevel }

// UserRepliesPrefix returns users/{user}/replies/, the prefix of a user's RPC responses.
func UserRepliesPrefix(user string) string { return UsersPrefix + user + "/" + repliesLevel + "/" }

// UserNamespace returns users/{user}/, the prefix of every topic private to user.
func UserNamespace(user string) string { return UsersPrefix + user + "/" }

// PresenceTopic returns presence/{user}.
func PresenceTopic(user string) string { return PresencePrefix + user }

// SharedFilter returns the filter of a shared subscription $share/{group}/{filter} and true,
// or "" and false for any other filter. Like Mochi, it matches the prefix in any letter case.
func SharedFilter(filter string) (string, bool) {
	const prefix = "$share/"
	if len(filter) < len(prefix) || !strings.EqualFold(filter[:len(prefix)], prefix) {
		return "", false
	}
	_, f, ok := strings.Cut(filter[len(prefix):], "/")
	if !ok {
		return "", false
	}
	return f, true
}

// IsWildcard reports whether a topic filter contains a wildcard level.
func IsWildcard(filter string) bool { return strings.ContainsAny(filter, "+#") }

// FilterReaches reports whether filter matches at least one topic that starts with the levels
// of prefix, where a prefix level "*" stands for any value except those listed in except.
// [MQTT-4.7.2-1]: a filter starting with a wildcard does not match topics starting with '$'.
func FilterReaches(filter string, prefix []string, except ...string) bool {
	levels := strings.Split(filter, "/")
	for i, p := range prefix {
		if i >= len(levels) {
			return false
		}
		f := levels[i]
		if i == 0 && (f == "+" || f == "#") && strings.HasPrefix(p, "$") {
			return false
		}
		switch {
		case f == "#":
			return true
		case f == "+":
			continue
		case p == "*":
			for _, e := range except {
				if f == e {
					return false
				}
			}
		case f != p:
			return false
		}
	}
	return true
}

// MatchTopic reports whether the topic filter matches the topic name.
func MatchTopic(filter, topic string) bool {
	if (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) && strings.HasPrefix(topic, "$") {
		return false // [MQTT-4.7.2-1]
	}
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}
