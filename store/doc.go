// Package store defines where the broker keeps its shared state — rooms, room histories,
// connections, room membership and access lists — and provides two implementations side by
// side: Memory, embedded in one process, and Redis, shared by many instances (a single server
// or a Cluster, through one go-redis UniversalClient).
//
// The Store interface is shaped so that a networked implementation (Redis) can do each method
// as one atomic server-side step: Append assigns the next id, stores the message and trims the
// history ring at once; Range reads an id range without scanning the history. Every
// implementation must pass the conformance suite in package storetest.
//
// The store knows nothing of MQTT, checkers or permissions: it stores what it is given.
package store
