package rooms

import "github.com/roomq/roomq/wire"

// Sentinel errors of the rooms package, matched with errors.Is.
var (
	// ErrBadMessage means the room's checker refused the message.
	ErrBadMessage = wire.NewError(wire.CodeBadMessage, "message refused by the room's checker")
	// ErrNoChecker means a room names a checker that is not registered.
	ErrNoChecker = wire.NewError(wire.CodeBadArgument, "no such checker")
)
