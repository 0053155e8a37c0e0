// Package devices owns connections: which connections each user holds, the retained presence
// of users, the echoes of connects and disconnects, and the wills of connections that end
// without DISCONNECT (including the MQTT v5 will delay).
//
// It does not speak MQTT itself: package hooks reports connects and disconnects to it and
// publishes what it asks through the Notifier and WillPublisher interfaces.
package devices
