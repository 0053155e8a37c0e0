// Command bench is a load generator for MQTT brokers, written for roomq but usable against
// any MQTT 5 broker over tcp:// or ws://.
//
// It runs one scenario against one broker, or with -compare the same scenario against roomq
// on the memory store, roomq on Redis, plain Mochi MQTT and Mosquitto, all started by the
// tool, and prints throughput, latency percentiles, losses, duplicates and errors with the
// ratios between the brokers.
//
// Scenarios:
//
//	fanout       P publishers, S subscribers on one room (or plain topic)
//	rooms        R rooms of k members; the first P members of each room also publish
//	rpc          $rpc/roomHistoryGet round trips (-rpc history) or device-to-device
//	             request/response through response topics (-rpc device)
//	connections  N idle connections opened at a rate; broker memory per connection
//	resume       subscribers disconnect and resume with since; gaps and duplicates
//
// Every payload starts with the publisher, a sequence number and the send time, so that
// receivers count losses and duplicates and measure latency. Each run ends by itself after
// -duration (or -count), plus -drain for outstanding deliveries.
//
// The clients are paho.golang. With -subscriber raw, the pure subscribers of fanout and rooms
// are a minimal reader instead (rawsub.go), which skips PUBLISH properties: paho.golang's
// property decoding otherwise costs more CPU than the broker, on the same two cores, against
// brokers that add properties to every message, as roomq does. BENCHMARKS.md at the root of
// the repository has the method and the results.
//
// Examples:
//
//	go run ./cmd/bench fanout -publishers 4 -subscribers 50 -qos 1 -duration 10s
//	go run ./cmd/bench compare fanout -subscriber raw -publishers 4 -subscribers 50 -qos 1 -duration 10s
//	go run ./cmd/bench rpc -target tcp://127.0.0.1:1883 -clients 8
package main
