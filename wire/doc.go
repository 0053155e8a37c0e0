// Package wire holds the vocabulary of the wire contract (docs/protocol.md) that every other
// package shares: topic names and their parsing, name validation, the RPC error codes and the
// JSON event objects the broker publishes.
//
// It owns no state and imports nothing from the rest of the project, so any package may use it.
package wire
