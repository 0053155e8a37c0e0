// Package client is a Go client of the roomq broker, built on paho.golang's autopaho. It
// speaks the wire contract of docs/protocol.md over MQTT 5 and keeps the connection up: when
// it drops, the client reconnects with backoff and restores every room, presence watch and
// request handler it had.
//
// # Delivery
//
// Everything the broker pushes (room messages, room and user events, direct messages,
// presence, device-to-device requests) is delivered through callbacks. The callbacks of one
// Client run one at a time, in arrival order, on a goroutine the Client owns (not on paho's
// router, which only appends to an unbounded queue). A slow callback therefore delays later
// callbacks but never the MQTT connection; a callback may call any method of the Client.
// Device-to-device request handlers are the exception: each runs on its own goroutine so that
// a long request does not hold up room messages.
//
// # Resume
//
// Join remembers, per room, the id of the last message delivered and the history epoch (the
// epoch user property). On every reconnect it subscribes again with since and epoch, so the
// callback sees every message once, in id order, across reconnects. When the broker reports a
// history gap or an epoch change (historyGap, historyReset), the room's OnEvent callback is
// told, and after an epoch change ids start again from the broker's replay.
//
// # What the package does not do
//
// It does not persist resume positions (pass JoinOptions.Since and Epoch to continue from a
// position saved elsewhere), it speaks MQTT 5 only (v3.1.1 clients use the JSON envelopes of
// the protocol), and it does not implement the JSON WebSocket gateway or the admin HTTP API.
package client
