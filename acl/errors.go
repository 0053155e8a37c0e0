package acl

import (
	"errors"

	"github.com/roomq/roomq/wire"
)

// Sentinel errors of the acl package.
var (
	// ErrBadCredentials means the credentials were missing or wrong.
	ErrBadCredentials = errors.New("bad username or password")
	// ErrNotAllowed means the identity may not do what it asked.
	ErrNotAllowed = wire.NewError(wire.CodeNotAllowed, "not allowed")
	// ErrNotJoined means reading a room needs a joined connection, ownership or admin rights.
	ErrNotJoined = wire.NewError(wire.CodeNotJoined, "not joined to the room")
)
