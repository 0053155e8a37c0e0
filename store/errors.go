package store

import "github.com/roomq/roomq/wire"

// Sentinel errors returned by every Store implementation. Callers match them with errors.Is.
var (
	// ErrNoRoom means the room does not exist.
	ErrNoRoom = wire.NewError(wire.CodeNoRoom, "no such room")
	// ErrRoomExists means a room of that name exists already.
	ErrRoomExists = wire.NewError(wire.CodeRoomExists, "room already exists")
	// ErrListLimit means an access list would grow beyond its limit; nothing was changed.
	ErrListLimit = wire.NewError(wire.CodeListLimitExceeded, "access list limit exceeded")
	// ErrNoList means a list name is not one of the access lists.
	ErrNoList = wire.NewError(wire.CodeNoList, "no such list")
	// ErrUnavailable means the store could not be reached or did not answer in time. A call
	// that timed out may still have been carried out.
	ErrUnavailable = wire.NewError(wire.CodeStoreUnavailable, "store unavailable")
)
