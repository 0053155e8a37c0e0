// Package mqtttest starts brokers on loopback and connects real MQTT clients to them, for the
// end-to-end tests of the project: paho.golang for MQTT 5 over TCP or WebSocket, and
// paho.mqtt.golang for MQTT 3.1.1.
package mqtttest
