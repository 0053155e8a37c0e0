package wire

import "strconv"

// User properties of bridged room messages (docs/protocol.md, "Device-to-device RPC and
// bridges"): the name of the broker where the message was first posted and its id there, and
// the history epoch of the sender's room, which scopes the ids for duplicate detection.
const (
	PropOriginBroker = "origin-broker"
	PropOriginID     = "origin-id"
	PropOriginEpoch  = "origin-epoch"
)

// Origin says where a bridged room message was first posted.
type Origin struct {
	// Broker is the name of the broker where the message was first posted; empty for a
	// message posted here.
	Broker string
	// ID is the message's id on that broker.
	ID uint64
	// Epoch is the history epoch of the room the sender took the message from: the sender's
	// ids grow within one epoch. Not stored with the message.
	Epoch string
}

// ParseOrigin reads the values of the user properties origin-broker, origin-id and
// origin-epoch of a room message. Broker and id both empty mean no origin (the zero Origin and
// a nil error); otherwise the broker must be a valid name and the id a positive integer, or a
// badMessage error is returned.
func ParseOrigin(broker, id, epoch string) (Origin, error) {
	if broker == "" && id == "" {
		return Origin{}, nil
	}
	if !ValidName(broker) {
		return Origin{}, NewError(CodeBadMessage, "user property origin-broker: not a valid broker name")
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil || n == 0 {
		return Origin{}, NewError(CodeBadMessage, "user property origin-id: not a positive integer")
	}
	return Origin{Broker: broker, ID: n, Epoch: epoch}, nil
}
