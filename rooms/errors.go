package rooms

import (
	"errors"

	"github.com/roomq/roomq/wire"
)

// Sentinel errors of the rooms package, matched with errors.Is.
var (
	// ErrBadMessage means the room's checker refused the message.
	ErrBadMessage = wire.NewError(wire.CodeBadMessage, "message refused by the room's checker")
	// ErrNoChecker means a room names a checker that is not registered.
	ErrNoChecker = wire.NewError(wire.CodeBadArgument, "no such checker")
)

// ErrDuplicate means a bridged message was posted already: a message of the same origin
// broker and epoch with that origin id or a later one was. Nothing is stored;
// the sender treats it as accepted. It carries no wire code (wire errors match by code), so
// callers handle it before mapping errors to codes.
var ErrDuplicate = errors.New("bridged message posted already")

// SizeError is returned for a message larger than its room accepts. It carries the badMessage
// code; callers that distinguish it (for a "packet too large" reason code) use errors.As.
type SizeError struct {
	Room  string
	Size  int
	Limit int
}

// Error implements error.
func (e *SizeError) Error() string { return e.Unwrap().Error() }

// Unwrap returns the wire error the client is told.
func (e *SizeError) Unwrap() error {
	return wire.Errorf(wire.CodeBadMessage, "message of %d bytes is over the limit of room %q (%d bytes)", e.Size, e.Room, e.Limit)
}
