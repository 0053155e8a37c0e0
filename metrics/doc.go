// Package metrics owns the broker's Prometheus metrics: a Metrics value with its own registry
// (never the global default one), typed methods that the other packages call at their
// instrumentation points, the HTTP handler that serves the text exposition on /metrics, and
// InstrumentStore, a store.Store decorator that times every call.
//
// A nil *Metrics is valid and does nothing, so every package works without metrics.
//
// It does not decide what happens to a message or a connection, and it keeps no state besides
// the metrics themselves: it counts what its callers report.
//
// All names start with roomq_; every metric describes this instance only (sum or aggregate
// them across instances in the queries):
//
//	roomq_instance_info{instance}                  1, with this instance's id
//	roomq_connections{transport}                   open MQTT connections (tcp, tls, ws)
//	roomq_connections_opened_total{transport}      connections established
//	roomq_connections_refused_total{code,reason}   CONNECTs refused with a CONNACK reason code
//	roomq_users_online                             users with a connection here, on scrape
//	roomq_rooms_active                             rooms with a subscriber here, on scrape
//	roomq_messages_in_total{kind}                  PUBLISH packets from clients (room, direct, rpc, plain)
//	roomq_messages_out_total                       PUBLISH packets written by the broker's outboxes
//	roomq_messages_refused_total{code,reason}      PUBLISH packets refused with a reason code
//	roomq_rpc_calls_total{command,code}            RPC calls by result ("ok" or the error code)
//	roomq_rpc_duration_seconds{command}            RPC latency
//	roomq_store_duration_seconds{op}               store call latency, by method
//	roomq_store_errors_total{op}                   store calls that failed (not domain answers)
//	roomq_dropped_total{reason}                    messages dropped or clients cut off
//	roomq_mqtt_*                                   Mochi's own counters, on scrape
//
// plus the Go runtime (go_*) and process (process_*) collectors.
package metrics
