package mqttws

import "errors"

// Sentinel errors of this package. Callers match them with errors.Is; the errors returned by New
// wrap them with the offending value.
var (
	// ErrNoID means Options.ID was empty. Mochi keys listeners by id, so every listener needs one.
	ErrNoID = errors.New("mqttws: listener id is required")
	// ErrBadOrigin means an entry of Options.AllowedOrigins is neither "*" nor of the exact form
	// scheme://host[:port].
	ErrBadOrigin = errors.New("mqttws: allowed origin must be \"*\" or scheme://host[:port]")
	// ErrBadReadLimit means Options.ReadLimit was negative.
	ErrBadReadLimit = errors.New("mqttws: read limit must not be negative")
	// ErrBadHandshakeTimeout means Options.HandshakeTimeout was negative.
	ErrBadHandshakeTimeout = errors.New("mqttws: handshake timeout must not be negative")
	// ErrNotBinary is returned by a connection's Read when the peer sent a text message. MQTT
	// packets must travel in binary messages, and the connection is closed [MQTT-6.0.0-1].
	ErrNotBinary = errors.New("mqttws: received a non-binary websocket message")
)
