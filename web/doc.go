// Package web serves the demo chat page: a plain HTML, CSS and JavaScript client that speaks
// MQTT 5 over WebSocket (/mqtt) to the broker with the vendored MQTT.js browser bundle. The
// files are embedded in the binary, so the page works without internet access.
//
// It owns the page and its static files only; it knows nothing of the broker, which mounts
// Handler on its HTTP mux. The page talks to the broker through the wire contract
// (docs/protocol.md) like any other client.
package web
