package broker_test

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/wire"
)

// scrape is one parsed GET /metrics.
type scrape map[string]*dto.MetricFamily

// scrapeMetrics reads and parses the broker's /metrics.
func scrapeMetrics(t *testing.T, b *broker.Broker) scrape {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value returns the value of the series of name with exactly the labels given as "k=v"
// pairs, and whether it exists. For name_count of a histogram it returns the sample count.
func (s scrape) value(name string, labels ...string) (float64, bool) {
	f, ok := s[name]
	count := false
	if !ok {
		base, found := strings.CutSuffix(name, "_count")
		f, ok = s[base]
		if !found || !ok || f.GetType() != dto.MetricType_HISTOGRAM {
			return 0, false
		}
		count = true
	}
	want := append([]string(nil), labels...)
	sort.Strings(want)
	for _, m := range f.GetMetric() {
		var got []string
		for _, l := range m.GetLabel() {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			continue
		}
		switch {
		case count:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// expect checks the series of name with labels against want.
func (s scrape) expect(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := s.value(name, labels...)
	if !ok {
		t.Errorf("%s%v: missing", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// has reports whether the series of name with labels equals want.
func (s scrape) has(want float64, name string, labels ...string) bool {
	got, ok := s.value(name, labels...)
	return ok && got == want
}

// GET /metrics reports connections by transport, users and rooms, messages in and out,
// refusals, RPC calls with their error codes and latency, store calls and the instance.
func TestMetricsEndToEnd(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.InstanceID = "metrics-1" })
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: wsURL(b)})
	alice.MustSubscribe("rooms/general")

	if code := bob.Publish("rooms/general", 1, []byte(`{"textMessage":"hi"}`), nil); code != 0 {
		t.Fatalf("room message: 0x%02x", code)
	}
	alice.Expect("rooms/general")
	if code := bob.Publish("rooms/general", 1, []byte(`hi?`), nil); code != 0x99 {
		t.Fatalf("bad room message: 0x%02x, want 0x99", code)
	}
	alice.MustRPC("roomCreate", map[string]any{"room": "lab"}, nil)
	if code := alice.RPCErrorCode("roomCreate", map[string]any{"room": "lab"}); code != wire.CodeRoomExists {
		t.Fatalf("second roomCreate: %s, want roomExists", code)
	}
	if code := alice.RPCErrorCode("noSuchCommand", map[string]any{}); code != wire.CodeNoCommand {
		t.Fatalf("unknown command: %s, want noCommand", code)
	}
	refused := mqtttest.Dial(t, "", mqtttest.Options{URL: tcpURL(b), NoFail: true})
	if refused.Connack == nil || refused.Connack.ReasonCode != 0x86 {
		t.Fatalf("connect without a user name: %+v, want CONNACK 0x86", refused.Connack)
	}

	// Connections are counted after their CONNACK, deliveries after the write: wait for them.
	var s scrape
	mqtttest.WaitFor(t, 5*time.Second, "connections and deliveries in /metrics", func() bool {
		s = scrapeMetrics(t, b)
		out, _ := s.value("roomq_messages_out_total")
		// The refusal is counted after its CONNACK is written, which the client may read first.
		return s.has(1, "roomq_connections", "transport=tcp") && s.has(1, "roomq_connections", "transport=ws") && out >= 4 &&
			s.has(1, "roomq_connections_refused_total", "code=0x86", "reason=bad username or password")
	})
	s.expect(t, 1, "roomq_instance_info", "instance=metrics-1")
	s.expect(t, 1, "roomq_connections_opened_total", "transport=tcp")
	s.expect(t, 1, "roomq_connections_opened_total", "transport=ws")
	s.expect(t, 1, "roomq_connections_refused_total", "code=0x86", "reason=bad username or password")
	s.expect(t, 2, "roomq_users_online")
	s.expect(t, 1, "roomq_rooms_active") // general; nobody joined lab
	s.expect(t, 2, "roomq_messages_in_total", "kind=room")
	s.expect(t, 3, "roomq_messages_in_total", "kind=rpc")
	s.expect(t, 0, "roomq_messages_in_total", "kind=direct")
	s.expect(t, 1, "roomq_messages_refused_total", "code=0x99", "reason=payload format invalid")
	s.expect(t, 1, "roomq_rpc_calls_total", "command=roomCreate", "code=ok")
	s.expect(t, 1, "roomq_rpc_calls_total", "command=roomCreate", "code=roomExists")
	s.expect(t, 1, "roomq_rpc_calls_total", "command=other", "code=noCommand")
	s.expect(t, 2, "roomq_rpc_duration_seconds_count", "command=roomCreate")
	s.expect(t, 0, "roomq_dropped_total", "reason=slow_consumer")
	for _, op := range []string{"AppendBatch", "CreateRoom", "AddConnection"} {
		if n, _ := s.value("roomq_store_duration_seconds_count", "op="+op); n < 1 {
			t.Errorf("no store call %s timed", op)
		}
	}
	if _, ok := s.value("roomq_store_errors_total", "op=CreateRoom"); ok {
		t.Error("roomExists counted as a store failure")
	}
	if n, _ := s.value("roomq_mqtt_messages_received_total"); n < 5 {
		t.Errorf("roomq_mqtt_messages_received_total = %v, want at least 5", n)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := s[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}

	bob.Close()
	mqtttest.WaitFor(t, 5*time.Second, "the ws connection to end in /metrics", func() bool {
		s = scrapeMetrics(t, b)
		return s.has(0, "roomq_connections", "transport=ws")
	})
	s.expect(t, 1, "roomq_connections", "transport=tcp")
	s.expect(t, 1, "roomq_users_online")
}
