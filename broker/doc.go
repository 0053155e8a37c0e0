// Package broker assembles the broker: the Mochi MQTT server with the project's hooks, the MQTT
// TCP listener, the HTTP server (MQTT over WebSocket on /mqtt, Prometheus metrics on /metrics,
// /healthz, /readyz, the admin API on /api/), the store, and their lifecycle from New to
// Shutdown. Broker.Hooks and Broker.API are the Go extension points (docs/api.md).
//
// It reads no flags or files: cmd/broker maps configuration onto Options. A program can embed
// the broker with New, Start and Shutdown.
package broker
