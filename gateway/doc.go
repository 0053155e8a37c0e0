// Package gateway serves the JSON WebSocket gateway of docs/protocol.md (/v1/ws), the push
// protocol of hu60bot, for web pages that do not speak MQTT.
//
// It owns the gateway's connections: the session check before the upgrade, the frames, the
// per-connection send queues, keepalive and shutdown. It does not own the messages it pushes:
// direct messages and presence reach it through two inline subscriptions on the Mochi server's
// topic index (users/+/inbox and presence/+), which package hooks serves from the same paths
// that deliver them to MQTT subscribers, from this instance and the others. Each connection is
// recorded with the devices registry as a connection of its user, so presence counts it and
// listOwnSockets lists it.
package gateway
