package store

import "github.com/roomq/roomq/wire"

// Sentinel errors returned by every Store implementation. Callers match them with errors.Is.
var (
	// ErrNoRoom means the room does not exist.
	ErrNoRoom = wire.NewError(wire.CodeNoRoom, "no such room")
	// ErrRoomExists means a room of that name exists already.
	ErrRoomExists = wire.NewError(wire.CodeRoomExists, "room already exists")
	// ErrUnavailable means the store cannot be reached; nothing was changed.
	ErrUnavailable = wire.NewError(wire.CodeStoreUnavailable, "store unavailable")
)
