package bridge

import "errors"

// ErrConfig is wrapped by every error about a bridge's configuration.
var ErrConfig = errors.New("bridge: bad configuration")

// ErrNotConnected is returned for an operation that needs the far side while the link is down.
var ErrNotConnected = errors.New("bridge: not connected")

// ErrRunning is returned by Run while the bridge runs already.
var ErrRunning = errors.New("bridge: running already")

// ErrRemote wraps an error that the far side's roomq broker answered to a command.
var ErrRemote = errors.New("bridge: remote command failed")
