package wire

import "strconv"

// User properties of bridged room messages (docs/protocol.md, "Device-to-device RPC and
// bridges"): the name of the broker where the message was first posted and its id there.
const (
	PropOriginBroker = "origin-broker"
	PropOriginID     = "origin-id"
)

// ParseOrigin reads the values of the user properties origin-broker and origin-id of a room
// message. Both empty means no origin (0 and "" and a nil error); otherwise the broker must be
// a valid name and the id a positive integer, or a badMessage error is returned.
func ParseOrigin(broker, id string) (string, uint64, error) {
	if broker == "" && id == "" {
		return "", 0, nil
	}
	if !ValidName(broker) {
		return "", 0, NewError(CodeBadMessage, "user property origin-broker: not a valid broker name")
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil || n == 0 {
		return "", 0, NewError(CodeBadMessage, "user property origin-id: not a positive integer")
	}
	return broker, n, nil
}
