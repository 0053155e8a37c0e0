package acl

import (
	"errors"

	"github.com/roomq/roomq/wire"
)

// Sentinel errors of the acl package.
var (
	// ErrBadCredentials means the credentials were missing or wrong.
	ErrBadCredentials = errors.New("bad username or password")
	// ErrAuthUnavailable means the authentication backend gave no answer: it was unreachable,
	// timed out or answered with an error. The credentials may be good; the client should
	// retry later. The broker answers CONNACK 0x88 "server unavailable" (0x03 for v3.1.1).
	ErrAuthUnavailable = errors.New("authentication unavailable")
	// ErrNotAllowed means the identity may not do what it asked.
	ErrNotAllowed = wire.NewError(wire.CodeNotAllowed, "not allowed")
	// ErrNotJoined means reading a room needs a joined connection, ownership or admin rights.
	ErrNotJoined = wire.NewError(wire.CodeNotJoined, "not joined to the room")
	// ErrBadRule means a topic ACL rule could not be parsed or is not valid.
	ErrBadRule = errors.New("bad topic ACL rule")
)
