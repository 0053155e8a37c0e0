// Package commands executes the broker's commands — the RPC commands of docs/protocol.md and
// their native MQTT equivalents (room message, direct message) — for an authenticated caller:
// it decodes and validates arguments, checks permissions with package acl, and calls packages
// rooms and devices.
//
// Transport-level effects (subscribing the calling connection, delivering a direct message,
// ending a connection) go through the Transport interface, which package hooks implements.
//
// It also owns the extension points of docs/api.md: Hooks, the Before and After hooks of every
// command and of its native equivalents, and the connection hooks that package hooks calls;
// and API, the server-side API that Go programs and the admin HTTP API (package adminapi) use.
package commands
