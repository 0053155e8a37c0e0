// Package bridge links a roomq broker to another MQTT broker as a client: plain topics and
// rooms, mapped with prefix rewriting, in either direction or both.
//
// # What a bridge owns
//
// A Bridge owns one MQTT 5 connection to the far side (tcp, ws, tls or wss, reconnected
// with backoff) and, when it maps plain topics, one connection to this broker; every
// goroutine it starts ends when the context given to Run ends.
//
// # Rooms
//
// Rooms are bridged to another roomq broker. Messages leaving this broker are read from the
// local room history in id order (woken by the store's feed, or by polling) and published to
// rooms/{remote room} with QoS 1, one at a time, each carrying the v5 user properties
// origin-broker and origin-id: the broker where it was first posted (this one, LocalName,
// unless it was itself bridged in) and its id there. Messages entering this broker come from
// a subscription to the remote room that resumes with the since user property; they are
// posted to the local room as Config.LocalUser, keeping their origin (the far side, Name, and
// the remote id, unless they carry an origin already).
//
// Loops are cut on both sides: a message whose origin is the broker it would be sent to, or
// that this bridge brought in, is never sent back. After a link outage each direction resumes
// where it stopped: out from the last local id the far side acknowledged (or that the far
// side shows it stored, read back from the remote room, so a lost PUBACK does not double a
// message), in from the last remote id bridged in. The far side also drops a message it
// stored already (same origin-broker and origin-epoch, an origin-id not newer), which covers
// a packet of a dead connection read late and a second bridge between the same brokers.
// Positions are kept in memory: a restarted broker starts its bridges from the rooms' current
// last messages.
//
// Each connection uses the configured client id with "-N" added, N counting connections: a
// new connection never takes over the previous one's client id, whose late clean-up on the
// far side could otherwise end the new connection's subscriptions.
//
// # Plain topics
//
// Plain topics are bridged at least once (QoS 0 or 1) to any MQTT 5 broker. Messages to send
// wait in a bounded queue while the far side is away; when it is full new ones are dropped and
// counted. Subscriptions on both sides use No Local, and messages carry origin-broker, so a
// two-way mapping does not loop.
//
// # What the package does not do
//
// It does not persist positions, does not bridge room events, access lists or presence, and
// is not aware of instances: run a broker's bridges on one instance only (several instances
// running the same bridge would each forward every message).
package bridge
