// Package mqttws serves MQTT over WebSocket from an http.Handler that the caller mounts on its
// own mux (for example at /mqtt), beside other routes on one port.
//
// A *Listener is at the same time a Mochi listeners.Listener (add it to the server with
// mqtt.Server.AddListener) and an http.Handler. Mochi's own listeners.Websocket runs its own
// http.Server, upgrades any path and accepts any origin; this listener replaces it and owns:
//
//   - the WebSocket handshake: subprotocol negotiation (mqtt, and the older mqttv3.1), the
//     Origin check (no Origin, same host, or an allowlist) and the handshake time limit;
//   - the net.Conn that Mochi reads MQTT packets from: binary messages only [MQTT-6.0.0-1],
//     packets may span message boundaries [MQTT-6.0.0-2], and one message is at most
//     Options.ReadLimit bytes; each write is one binary message, except that the writes
//     between StartBatch and EndBatch (the broker's outbox writing the packets it has queued)
//     go out as one message, several packets in it;
//   - the upgraded connections it has handed to Mochi, which it closes on Close;
//   - the handshake data an authenticator may need: each connection implements Handshake,
//     giving the cookies and query parameters of its upgrade request.
//
// It does not own the HTTP server: the caller creates it, chooses the path, sets its timeouts
// (ReadHeaderTimeout bounds the time to read the upgrade request) and shuts it down. Hijacked
// WebSocket connections are not tracked by http.Server.Shutdown; Close (called by
// mqtt.Server.Close) closes them. It does not authenticate clients or check MQTT permissions:
// that is the job of the broker's hooks.
//
// Lifecycle: ServeHTTP answers 503 Service Unavailable until Mochi has called Serve and again
// once Close has been called. Each accepted connection is handed to Mochi in the ServeHTTP
// goroutine, so the HTTP server's goroutine owns it; the package starts no goroutines of its own.
//
// Lock order: Listener.mu is never held while calling Mochi or touching a connection; a
// connection's write mutex may be taken with its read mutex held (closing the connection on a
// read error sends what a batch gathered), never the other way round.
package mqttws
