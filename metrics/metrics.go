package metrics

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric name.
const namespace = "roomq"

// Kinds of messages in, the label of MessageIn.
const (
	// KindRoom is a message to rooms/{room}.
	KindRoom = "room"
	// KindDirect is a direct message to users/{user}/inbox.
	KindDirect = "direct"
	// KindRPC is an RPC request to $rpc/{command}.
	KindRPC = "rpc"
	// KindPlain is any other topic, left to Mochi's delivery (or refused by the topic rules).
	KindPlain = "plain"
)

// Reasons of Dropped.
const (
	// DropSlowConsumer counts the clients disconnected because they fell more than
	// MaxQueued packets behind (each drops its queue; it resumes by id).
	DropSlowConsumer = "slow_consumer"
	// DropBroadcastQueueFull counts the messages for the other instances dropped because the
	// queue to the store was full.
	DropBroadcastQueueFull = "broadcast_queue_full"
	// DropNoPacketID counts the QoS > 0 packets an outbox dropped for want of a free packet id.
	DropNoPacketID = "no_packet_id"
	// DropTooLarge counts the packets an outbox discarded because they exceed the client's
	// Maximum Packet Size [MQTT-3.1.2-25].
	DropTooLarge = "too_large"
)

// CodeOK is the code label of a successful RPC call.
const CodeOK = "ok"

// OtherCommand is the command label of RPC calls to names that are not commands (see
// SetCommands), so that clients cannot create label values.
const OtherCommand = "other"

// Local reports the state of this instance; Metrics asks for it on every scrape.
type Local interface {
	// UsersOnline returns how many distinct users have a connection on this instance.
	UsersOnline() int
	// ActiveRooms returns how many rooms have at least one subscriber on this instance.
	ActiveRooms() int
}

// Metrics holds the broker's metrics and their registry. Create one with New; the zero value
// is not usable, but a nil *Metrics is: its methods do nothing.
type Metrics struct {
	reg *prometheus.Registry

	instance      *prometheus.GaugeVec
	connections   *prometheus.GaugeVec
	opened        *prometheus.CounterVec
	connRefused   *prometheus.CounterVec
	messagesIn    *prometheus.CounterVec
	messagesOut   prometheus.Counter
	refused       *prometheus.CounterVec
	rpcCalls      *prometheus.CounterVec
	rpcDuration   *prometheus.HistogramVec
	storeDuration *prometheus.HistogramVec
	storeErrors   *prometheus.CounterVec
	dropped       *prometheus.CounterVec

	local    atomic.Pointer[Local]
	mqtt     atomic.Pointer[system.Info]
	commands atomic.Pointer[map[string]bool]

	mu sync.Mutex // serialises SetInstance
}

// rpcBuckets are the bounds of the RPC latency histogram, in seconds.
var rpcBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// storeBuckets are the bounds of the store latency histogram, in seconds: from the memory
// store's microseconds to a slow Redis.
var storeBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// New returns Metrics with a registry of their own, which also holds the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		instance: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "instance_info",
			Help: "Always 1; the label instance is the id of this broker instance.",
		}, []string{"instance"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "connections",
			Help: "MQTT connections open on this instance, by transport (the listener: tcp, tls, ws).",
		}, []string{"transport"}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "connections_opened_total",
			Help: "MQTT connections established on this instance, by transport.",
		}, []string{"transport"}),
		connRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "connections_refused_total",
			Help: "CONNECT packets refused, by the MQTT 5 CONNACK reason code.",
		}, []string{"code", "reason"}),
		messagesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "messages_in_total",
			Help: "PUBLISH packets received from clients, by kind (room, direct, rpc, plain), refused ones included.",
		}, []string{"kind"}),
		messagesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "messages_out_total",
			Help: "PUBLISH packets written by the broker's outboxes: room messages, history, events, direct messages, RPC responses.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "messages_refused_total",
			Help: "PUBLISH packets refused, by the MQTT 5 reason code.",
		}, []string{"code", "reason"}),
		rpcCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rpc_calls_total",
			Help: `RPC calls, by command and result ("ok" or the error code).`,
		}, []string{"command", "code"}),
		rpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "rpc_duration_seconds",
			Help:    "Time to run an RPC call, by command.",
			Buckets: rpcBuckets,
		}, []string{"command"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_duration_seconds",
			Help:    "Time of store calls, by method.",
			Buckets: storeBuckets,
		}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_errors_total",
			Help: "Store calls that failed, by method; domain answers (no room, room exists, list limit, no list) are not failures.",
		}, []string{"op"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "dropped_total",
			Help: "Messages dropped, by reason; slow_consumer counts the clients disconnected for falling behind.",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.instance, m.connections, m.opened, m.connRefused, m.messagesIn, m.messagesOut,
		m.refused, m.rpcCalls, m.rpcDuration, m.storeDuration, m.storeErrors, m.dropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "users_online",
			Help: "Distinct users with a connection on this instance.",
		}, func() float64 { return m.localValue(Local.UsersOnline) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "rooms_active",
			Help: "Rooms with at least one subscriber on this instance.",
		}, func() float64 { return m.localValue(Local.ActiveRooms) }),
	)
	m.registerMQTT()
	for _, k := range []string{KindRoom, KindDirect, KindRPC, KindPlain} {
		m.messagesIn.WithLabelValues(k) // present at 0 from the start
	}
	for _, r := range []string{DropSlowConsumer, DropBroadcastQueueFull, DropNoPacketID, DropTooLarge} {
		m.dropped.WithLabelValues(r)
	}
	return m
}

// registerMQTT registers Mochi's counters, read from the Info given to ObserveMQTT.
func (m *Metrics) registerMQTT() {
	counter := func(name, help string, v func(*system.Info) *int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "mqtt", Name: name, Help: help,
		}, func() float64 { return m.mqttValue(v) })
	}
	m.reg.MustRegister(
		counter("messages_received_total", "PUBLISH packets received, as Mochi counts them.",
			func(i *system.Info) *int64 { return &i.MessagesReceived }),
		counter("messages_sent_total", "PUBLISH packets sent, as Mochi counts them: the outboxes' and Mochi's own fan-out of plain topics.",
			func(i *system.Info) *int64 { return &i.MessagesSent }),
		counter("bytes_received_total", "Bytes received from MQTT clients.",
			func(i *system.Info) *int64 { return &i.BytesReceived }),
		counter("bytes_sent_total", "Bytes sent to MQTT clients.",
			func(i *system.Info) *int64 { return &i.BytesSent }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "mqtt", Name: "retained_messages",
			Help: "Retained messages held by Mochi on this instance.",
		}, func() float64 { return m.mqttValue(func(i *system.Info) *int64 { return &i.Retained }) }),
	)
}

func (m *Metrics) localValue(f func(Local) int) float64 {
	l := m.local.Load()
	if l == nil {
		return 0
	}
	return float64(f(*l))
}

func (m *Metrics) mqttValue(f func(*system.Info) *int64) float64 {
	info := m.mqtt.Load()
	if info == nil {
		return 0
	}
	return float64(atomic.LoadInt64(f(info)))
}

// Registry returns the registry of the metrics, to register more collectors or to gather.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler returns the HTTP handler of the text exposition (GET /metrics). With nil Metrics it
// answers 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SetInstance sets roomq_instance_info to the instance id, replacing an earlier one.
func (m *Metrics) SetInstance(id string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.instance.Reset()
	m.instance.WithLabelValues(id).Set(1)
}

// SetCommands names the RPC commands; RPC reports calls of other names as OtherCommand. Until
// it is called, every name is its own label value.
func (m *Metrics) SetCommands(names []string) {
	if m == nil {
		return
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	m.commands.Store(&set)
}

// ObserveLocal makes roomq_users_online and roomq_rooms_active report l on every scrape.
func (m *Metrics) ObserveLocal(l Local) {
	if m == nil || l == nil {
		return
	}
	m.local.Store(&l)
}

// ObserveMQTT makes the roomq_mqtt_* metrics report Mochi's counters in info (the server's
// Info).
func (m *Metrics) ObserveMQTT(info *system.Info) {
	if m == nil || info == nil {
		return
	}
	m.mqtt.Store(info)
}

// ConnectionOpened counts a connection established on transport (the Mochi listener id).
func (m *Metrics) ConnectionOpened(transport string) {
	if m == nil {
		return
	}
	m.connections.WithLabelValues(transport).Inc()
	m.opened.WithLabelValues(transport).Inc()
}

// ConnectionClosed counts the end of a connection that ConnectionOpened counted.
func (m *Metrics) ConnectionClosed(transport string) {
	if m == nil {
		return
	}
	m.connections.WithLabelValues(transport).Dec()
}

// ConnectionRefused counts a CONNECT refused with the MQTT 5 reason code (for a v3.1.1
// client, the v5 code of the same refusal).
func (m *Metrics) ConnectionRefused(code packets.Code) {
	if m == nil {
		return
	}
	m.connRefused.WithLabelValues(hexCode(code.Code), code.Reason).Inc()
}

// MessageIn counts a PUBLISH received from a client; kind is one of the Kind constants.
func (m *Metrics) MessageIn(kind string) {
	if m == nil {
		return
	}
	m.messagesIn.WithLabelValues(kind).Inc()
}

// MessageOut counts a PUBLISH packet written to a client by an outbox.
func (m *Metrics) MessageOut() {
	if m == nil {
		return
	}
	m.messagesOut.Inc()
}

// Refused counts a PUBLISH refused with the MQTT 5 reason code (the message is dropped for
// clients that cannot receive the code).
func (m *Metrics) Refused(code packets.Code) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(hexCode(code.Code), code.Reason).Inc()
}

// RPC counts an RPC call of command that took d; code is its error code, "" on success.
func (m *Metrics) RPC(command, code string, d time.Duration) {
	if m == nil {
		return
	}
	if set := m.commands.Load(); set != nil && !(*set)[command] {
		command = OtherCommand
	}
	if code == "" {
		code = CodeOK
	}
	m.rpcCalls.WithLabelValues(command, code).Inc()
	m.rpcDuration.WithLabelValues(command).Observe(d.Seconds())
}

// StoreCall records a call of the store method op that took d and returned err. Errors that
// are answers (see IsDomainError) do not count as failures.
func (m *Metrics) StoreCall(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.storeDuration.WithLabelValues(op).Observe(d.Seconds())
	if err != nil && !IsDomainError(err) {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

// Dropped counts a dropped message; reason is one of the Drop constants.
func (m *Metrics) Dropped(reason string) {
	if m == nil {
		return
	}
	m.dropped.WithLabelValues(reason).Inc()
}

func hexCode(c byte) string { return fmt.Sprintf("0x%02x", c) }
