// Command bench is a load generator for MQTT brokers, written for roomq but usable against
// any MQTT 5 broker over tcp:// or ws://.
//
// It runs one scenario against one broker, or with -compare the same scenario against roomq
// on the memory store, roomq on Redis, plain Mochi MQTT and Mosquitto, all started by the
// tool, and prints throughput, latency percentiles, losses, duplicates and errors with the
// ratios between the brokers. On Linux each result also has the machine's CPU condition over
// its load phase, from /proc/stat (cpustat.go): busy % (user, nice, system, irq and softirq
// time) and steal % (time the hypervisor gave to other guests), both of all cores; the tool
// warns when steal is above 10 %, as the figures of that run are then disturbed.
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
// The Go brokers it starts (roomq-memory, roomq-redis, mochi) run by default in a child
// process, as Mosquitto does: the tool runs its own executable again with ROOMQ_BENCH_CHILD
// set (child.go), so that the broker has its own Go runtime, garbage collector, file limit and
// CPU profile, and the memory per connection is the child's resident set. -isolate=false runs
// them inside the tool's process instead.
//
// Every payload starts with the publisher, a sequence number and the send time, so that
// receivers count losses and duplicates and measure latency. Each run ends by itself after
// -duration (or -count), plus -drain for outstanding deliveries.
//
// Against roomq, the paths that exist only on roomq use the project's client package, as an
// application would: room creation on a broker named by URL (client.RoomCreate), the
// prefill of -rpc history (client.Send), the requesters of -rpc history with -requester
// client (client.RoomHistoryGet), and the resume subscribers, each a client.Client joined to the room; a resume closes it and joins a
// new one with JoinOptions{Resume, Since, Epoch} from the old one's Position, as an
// application that restarts does. The client package drops ids it delivered already, so the
// duplicates of resume on roomq are those an application would see. These clients ignore
// -sources, and their RPCs are QoS 1 whatever -qos says.
//
// Everything else is paho.golang directly: the publishers and subscribers of fanout and rooms,
// the device requesters and responders of -rpc device, the connections scenario and resume on
// other brokers (persistent sessions), because the same code must speak to plain Mochi and
// Mosquitto (with plain topics instead of rooms) and measure raw deliveries, without the
// client package's queueing, ordering and duplicate filtering in between. With
// -subscriber raw, the pure subscribers of fanout and rooms are a minimal reader instead
// (rawsub.go), which skips PUBLISH properties: paho.golang's property decoding otherwise costs
// more CPU than the broker, on the same two cores, against brokers that add properties to
// every message, as roomq does. Likewise the requesters of -rpc history are by default
// (-requester raw) a minimal MQTT v5 client (rawrpc.go) that checks each answer with a scan
// of the envelope (success, the request's correlation data, exactly -history messages, ids
// ascending) instead of decoding its messages, as client.RoomHistoryGet does at a CPU cost
// above the broker's; their requests are at -qos. BENCHMARKS.md at the root of the repository has the method
// and the results.
//
// Examples:
//
//	go run ./cmd/bench fanout -publishers 4 -subscribers 50 -qos 1 -duration 10s
//	go run ./cmd/bench compare fanout -subscriber raw -publishers 4 -subscribers 50 -qos 1 -duration 10s
//	go run ./cmd/bench rpc -target tcp://127.0.0.1:1883 -clients 8
package main
