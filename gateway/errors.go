package gateway

import "errors"

// Sentinel errors of the gateway package.
var (
	// ErrBadOptions means Options were missing a required field or held an invalid value.
	ErrBadOptions = errors.New("gateway: bad options")
	// ErrSubscribed means another gateway already listens on the same topic index: there is
	// one gateway per Mochi server.
	ErrSubscribed = errors.New("gateway: another gateway listens on this server")
	// ErrClosed means the gateway was closed.
	ErrClosed = errors.New("gateway: closed")
)
