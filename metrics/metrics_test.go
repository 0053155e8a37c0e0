package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/roomq/roomq/metrics"
	"github.com/roomq/roomq/store"
)

func TestNilMetricsIsNoOp(t *testing.T) {
	var m *metrics.Metrics
	m.SetInstance("x")
	m.SetCommands([]string{"a"})
	m.ObserveLocal(nil)
	m.ObserveMQTT(nil)
	m.ConnectionOpened("tcp")
	m.ConnectionClosed("tcp")
	m.ConnectionRefused(packets.ErrBadUsernameOrPassword)
	m.MessageIn(metrics.KindRoom)
	m.MessageOut()
	m.Refused(packets.ErrPayloadFormatInvalid)
	m.RPC("roomCreate", "", time.Millisecond)
	m.StoreCall("Room", time.Millisecond, nil)
	m.Dropped(metrics.DropSlowConsumer)
	if m.Registry() != nil {
		t.Fatal("nil Metrics has a registry")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("nil Metrics handler: %d, want 404", rec.Code)
	}
	st := store.NewMemory()
	if got := metrics.InstrumentStore(st, nil); got != store.Store(st) {
		t.Fatal("InstrumentStore with nil Metrics wraps the store")
	}
}

type local struct{ users, rooms int }

func (l local) UsersOnline() int { return l.users }
func (l local) ActiveRooms() int { return l.rooms }

func TestMetrics(t *testing.T) {
	m := metrics.New()
	m.SetInstance("old")
	m.SetInstance("i1")
	m.SetCommands([]string{"roomCreate"})
	m.ObserveLocal(local{users: 2, rooms: 3})
	info := &system.Info{MessagesSent: 7}
	m.ObserveMQTT(info)

	m.ConnectionOpened("tcp")
	m.ConnectionOpened("tcp")
	m.ConnectionOpened("ws")
	m.ConnectionClosed("tcp")
	m.ConnectionRefused(packets.ErrBadUsernameOrPassword)
	m.MessageIn(metrics.KindRoom)
	m.MessageIn(metrics.KindRoom)
	m.MessageIn(metrics.KindRPC)
	m.MessageOut()
	m.Refused(packets.ErrPayloadFormatInvalid)
	m.RPC("roomCreate", "roomExists", 3*time.Millisecond)
	m.RPC("roomCreate", "", time.Millisecond)
	m.RPC("made-up", "noCommand", time.Millisecond)
	m.Dropped(metrics.DropBroadcastQueueFull)

	want := `
# HELP roomq_connections MQTT connections open on this instance, by transport (the listener: tcp, tls, ws).
# TYPE roomq_connections gauge
roomq_connections{transport="tcp"} 1
roomq_connections{transport="ws"} 1
# HELP roomq_connections_opened_total MQTT connections established on this instance, by transport.
# TYPE roomq_connections_opened_total counter
roomq_connections_opened_total{transport="tcp"} 2
roomq_connections_opened_total{transport="ws"} 1
# HELP roomq_connections_refused_total CONNECT packets refused, by the MQTT 5 CONNACK reason code.
# TYPE roomq_connections_refused_total counter
roomq_connections_refused_total{code="0x86",reason="bad username or password"} 1
# HELP roomq_dropped_total Messages dropped, by reason; slow_consumer counts the clients disconnected for falling behind.
# TYPE roomq_dropped_total counter
roomq_dropped_total{reason="broadcast_queue_full"} 1
roomq_dropped_total{reason="no_packet_id"} 0
roomq_dropped_total{reason="slow_consumer"} 0
roomq_dropped_total{reason="too_large"} 0
# HELP roomq_instance_info Always 1; the label instance is the id of this broker instance.
# TYPE roomq_instance_info gauge
roomq_instance_info{instance="i1"} 1
# HELP roomq_messages_in_total PUBLISH packets received from clients, by kind (room, direct, rpc, plain), refused ones included.
# TYPE roomq_messages_in_total counter
roomq_messages_in_total{kind="direct"} 0
roomq_messages_in_total{kind="plain"} 0
roomq_messages_in_total{kind="room"} 2
roomq_messages_in_total{kind="rpc"} 1
# HELP roomq_messages_out_total PUBLISH packets written by the broker's outboxes: room messages, history, events, direct messages, RPC responses.
# TYPE roomq_messages_out_total counter
roomq_messages_out_total 1
# HELP roomq_messages_refused_total PUBLISH packets refused, by the MQTT 5 reason code.
# TYPE roomq_messages_refused_total counter
roomq_messages_refused_total{code="0x99",reason="payload format invalid"} 1
# HELP roomq_mqtt_messages_sent_total PUBLISH packets sent, as Mochi counts them: the outboxes' and Mochi's own fan-out of plain topics.
# TYPE roomq_mqtt_messages_sent_total counter
roomq_mqtt_messages_sent_total 7
# HELP roomq_rooms_active Rooms with at least one subscriber on this instance.
# TYPE roomq_rooms_active gauge
roomq_rooms_active 3
# HELP roomq_rpc_calls_total RPC calls, by command and result ("ok" or the error code).
# TYPE roomq_rpc_calls_total counter
roomq_rpc_calls_total{code="noCommand",command="other"} 1
roomq_rpc_calls_total{code="ok",command="roomCreate"} 1
roomq_rpc_calls_total{code="roomExists",command="roomCreate"} 1
# HELP roomq_users_online Distinct users with a connection on this instance.
# TYPE roomq_users_online gauge
roomq_users_online 2
`
	names := []string{
		"roomq_connections", "roomq_connections_opened_total", "roomq_connections_refused_total",
		"roomq_dropped_total", "roomq_instance_info", "roomq_messages_in_total", "roomq_messages_out_total",
		"roomq_messages_refused_total", "roomq_mqtt_messages_sent_total", "roomq_rooms_active",
		"roomq_rpc_calls_total", "roomq_users_online",
	}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.Registry(), "roomq_rpc_duration_seconds"); n != 2 {
		t.Fatalf("rpc duration series: %d, want 2 (roomCreate, other)", n)
	}
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, s := range []string{"go_goroutines", "process_cpu_seconds_total", `roomq_instance_info{instance="i1"} 1`} {
		if !strings.Contains(string(body), s) {
			t.Errorf("exposition lacks %s", s)
		}
	}
}

// failing is a store whose Room always fails.
type failing struct {
	store.Store
	err error
}

func (f failing) Room(context.Context, string) (store.Room, error) { return store.Room{}, f.err }

func TestInstrumentStore(t *testing.T) {
	m := metrics.New()
	mem := store.NewMemory()
	defer mem.Close()
	st := metrics.InstrumentStore(mem, m)
	ctx := context.Background()
	if err := st.CreateRoom(ctx, store.Room{Name: "a", Owner: "o", Checker: "text"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRoom(ctx, store.Room{Name: "a", Owner: "o", Checker: "text"}); !errors.Is(err, store.ErrRoomExists) {
		t.Fatalf("second CreateRoom: %v, want ErrRoomExists through the decorator", err)
	}
	if _, err := st.Append(ctx, "a", store.Message{Author: "o", Payload: []byte(`{}`)}, 10); err != nil {
		t.Fatal(err)
	}
	broken := metrics.InstrumentStore(failing{Store: mem, err: fmt.Errorf("room: %w", store.ErrUnavailable)}, m)
	if _, err := broken.Room(ctx, "a"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Room: %v", err)
	}
	if n := testutil.CollectAndCount(m.Registry(), "roomq_store_duration_seconds"); n != 3 {
		t.Fatalf("store duration series: %d, want 3 (CreateRoom, Append, Room)", n)
	}
	want := `
# HELP roomq_store_errors_total Store calls that failed, by method; domain answers (no room, room exists, list limit, no list) are not failures.
# TYPE roomq_store_errors_total counter
roomq_store_errors_total{op="Room"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "roomq_store_errors_total"); err != nil {
		t.Fatal(err)
	}
	if !metrics.IsDomainError(fmt.Errorf("x: %w", store.ErrNoRoom)) || metrics.IsDomainError(store.ErrUnavailable) {
		t.Fatal("IsDomainError")
	}
}

// The instrumented store shows ranges in place when the store can (RangeViewer), and through
// Range when it cannot; both count as Range.
func TestInstrumentStoreViewRange(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory()
	defer mem.Close()
	if err := mem.CreateRoom(ctx, store.Room{Name: "a", Owner: "o", Checker: "text"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := mem.Append(ctx, "a", store.Message{Author: "o", Payload: []byte(`{}`)}, 10); err != nil {
			t.Fatal(err)
		}
	}
	// failing{Store: mem} hides Memory's ViewRange: the decorator falls back to Range.
	for name, st := range map[string]store.Store{"viewer": mem, "no viewer": failing{Store: mem}} {
		t.Run(name, func(t *testing.T) {
			m := metrics.New()
			v, ok := metrics.InstrumentStore(st, m).(store.RangeViewer)
			if !ok {
				t.Fatal("the instrumented store is no RangeViewer")
			}
			var ids []uint64
			err := v.ViewRange(ctx, "a", 1, 10, func(msgs []store.Message) error {
				for _, msg := range msgs {
					ids = append(ids, msg.ID)
				}
				return nil
			})
			if err != nil || len(ids) != 2 || ids[0] != 2 || ids[1] != 3 {
				t.Fatalf("ViewRange after 1 = ids %v, %v; want 2, 3", ids, err)
			}
			if err := v.ViewRange(ctx, "missing", 0, 10, func([]store.Message) error { return nil }); !errors.Is(err, store.ErrNoRoom) {
				t.Fatalf("ViewRange of a missing room: %v, want ErrNoRoom", err)
			}
			if n := testutil.CollectAndCount(m.Registry(), "roomq_store_duration_seconds"); n != 1 {
				t.Fatalf("store duration series: %d, want 1 (Range)", n)
			}
		})
	}
}
