// Package bridge links a roomq broker to another MQTT broker as a client: plain topics and
// rooms, mapped with prefix rewriting, in either direction or both.
//
// # What a bridge owns
//
// A Bridge owns up to two MQTT 5 connections to the far side (tcp, ws, tls or wss, each
// reconnected with backoff): a roomq client (package client) when it maps rooms, and a bare
// MQTT connection (paho.golang's autopaho) when it maps plain topics. When it maps plain
// topics it also owns one connection to this broker. Every goroutine it starts ends when the
// context given to Run ends.
//
// # Rooms
//
// Rooms are bridged to another roomq broker, through a client.Client: the far side is a
// roomq broker, so the bridge uses the same client as any other program, with its resume by
// id and its RPCs. Messages leaving this broker are read from the local room history in id
// order (woken by the store's feed, or by polling) and sent with client.SendWith, one at a
// time, each waiting for its PUBACK and carrying the origin (the v5 user properties
// origin-broker, origin-id and origin-epoch): the broker where it was first posted (this
// one, LocalName, unless it was itself bridged in) and its id there. Messages entering this
// broker come from client.Join on the remote room, first live, after the room's last
// message; the client resumes it by id on every reconnect, and the bridge joins it again
// from its own position (the last remote id handled) when the far side ends the membership.
// They are posted to the local room as Config.LocalUser, keeping their origin
// (client.Message.OriginBroker and OriginID; the far side, Name, and the remote id when they
// carry none).
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
// Each connection uses the configured client id with "-N" added (the rooms client's with
// "-rooms-N"), N counting connections: a new connection never takes over the previous one's
// client id, whose late clean-up on the far side could otherwise end the new connection's
// subscriptions. A bridge that maps both rooms and plain topics therefore holds
// two connections at the far side as its user; Status.Connected is true while both are up,
// and Status.Connections counts both.
//
// # Plain topics
//
// Plain topics are bridged at least once (QoS 0 or 1) to any MQTT 5 broker (Mosquitto, say),
// so they stay on a bare autopaho connection rather than the roomq client: the client
// subscribes, at every connect, to the roomq topics of its user (users/{user}/events and
// replies), which another broker may refuse, and it has no way to publish to a plain topic
// with QoS 0, retain or arbitrary user properties, or to subscribe with No Local and Retain
// As Published. Messages to send
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
