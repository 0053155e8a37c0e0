// Package store defines where the broker keeps its shared state — rooms, room histories,
// connections and room membership — and provides the embedded in-memory implementation.
//
// The Store interface is shaped so that a networked implementation (Redis) can do each method
// as one atomic server-side step: Append assigns the next id, stores the message and trims the
// history ring at once; Range reads an id range without scanning the history. Every
// implementation must pass the conformance suite in package storetest.
//
// The store knows nothing of MQTT, checkers or permissions: it stores what it is given.
package store
