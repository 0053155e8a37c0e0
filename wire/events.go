package wire

// Event names carried in the "event" field of the JSON objects on rooms/{room}/events and
// users/{user}/events.
const (
	EventUserJoined        = "userJoined"
	EventUserLeft          = "userLeft"
	EventAccessListChanged = "accessListChanged"
	EventModeChanged       = "modeChanged"
	EventRoomDeleted       = "roomDeleted"
	EventRoomAccessRemoved = "roomAccessRemoved"
	EventRoomJoinedEcho    = "roomJoinedEcho"
	EventRoomLeftEcho      = "roomLeftEcho"
	EventDirectMessageEcho = "directMessageEcho"
	EventConnectionEcho    = "connectionEcho"
	EventDisconnectionEcho = "disconnectionEcho"
	EventSystemMessage     = "systemMessage"
	EventHistoryGap        = "historyGap"
	EventHistoryReset      = "historyReset"
)

// Event is a notification object: the "event" field names it, the other fields depend on it
// (see the Notifications section of docs/protocol.md).
type Event map[string]any

// NewEvent returns an event named name with the given fields.
func NewEvent(name string, fields map[string]any) Event {
	e := Event{"event": name}
	for k, v := range fields {
		e[k] = v
	}
	return e
}

// Presence is the retained object on presence/{user}.
type Presence struct {
	User        string `json:"user"`
	Online      bool   `json:"online"`
	Connections int    `json:"connections"`
	Timestamp   int64  `json:"timestamp"`
	// Version orders the presences of one user across instances: a later count has a higher
	// version. It is not part of the message.
	Version uint64 `json:"-"`
}
