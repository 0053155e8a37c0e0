package mqttws_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pahopackets "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/internal/wsnet"
	"github.com/roomq/roomq/mqttws"
)

const (
	// timeout bounds every wait in these tests.
	timeout = 5 * time.Second
	// healthBody is served beside the listener to show both share one mux and port.
	healthBody = "ok"
)

// waitFor polls cond until it holds or the timeout passes (nats' checkFor).
func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		<-tick.C
	}
}

// allowAll lets every client connect and use every topic. It stands in for Mochi's
// auth.AllowHook, whose package needs a module (yaml.v3) this repository does not require;
// it is only for this package's tests, which are about transport, not access.
type allowAll struct {
	mqtt.HookBase
}

func (h *allowAll) ID() string { return "test-allow-all" }

func (h *allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// broker is a real Mochi server whose only listener is an mqttws.Listener mounted at /mqtt on
// an httptest.Server, beside a /healthz route.
type broker struct {
	srv *mqtt.Server
	l   *mqttws.Listener
	ts  *httptest.Server
	url string // ws://host:port/mqtt
	// closeMochi closes the Mochi server (which closes the listener) and may be called again;
	// Mochi's own Close must run only once.
	closeMochi func()
}

// startBroker starts a broker and waits until the listener serves. Everything is stopped at the
// end of the test.
func startBroker(t *testing.T, opts mqttws.Options) *broker {
	t.Helper()
	if opts.ID == "" {
		opts.ID = "ws-test"
	}
	srv := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		t.Fatalf("add allow hook: %v", err)
	}
	l, err := mqttws.New(opts)
	if err != nil {
		t.Fatalf("new listener: %v", err)
	}
	if err := srv.AddListener(l); err != nil {
		t.Fatalf("add listener: %v", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/mqtt", l)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(healthBody))
	})
	ts := httptest.NewServer(mux)

	closeMochi := sync.OnceFunc(func() { _ = srv.Close() })
	t.Cleanup(func() {
		closeMochi()
		ts.Close()
	})
	if err := srv.Serve(); err != nil {
		t.Fatalf("serve: %v", err)
	}

	b := &broker{srv: srv, l: l, ts: ts, url: "ws" + strings.TrimPrefix(ts.URL, "http") + "/mqtt", closeMochi: closeMochi}
	// Mochi calls Serve in a goroutine; until then the listener answers 503.
	waitFor(t, timeout, func() bool { return b.status(t) != http.StatusServiceUnavailable })
	return b
}

// status returns the HTTP status of a plain (non-upgrade) GET of /mqtt.
func (b *broker) status(t *testing.T) int {
	t.Helper()
	resp, err := b.ts.Client().Get(b.ts.URL + "/mqtt")
	if err != nil {
		t.Fatalf("get /mqtt: %v", err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// connected returns the number of MQTT clients Mochi counts as connected.
func (b *broker) connected() int64 {
	return atomic.LoadInt64(&b.srv.Info.ClientsConnected)
}

// dial opens a raw WebSocket connection to the broker. The connection, if any, is closed at the
// end of the test.
func (b *broker) dial(t *testing.T, header http.Header, protocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: timeout}
	ws, resp, err := d.Dial(b.url, header)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if ws != nil {
		t.Cleanup(func() { _ = ws.Close() })
	}
	return ws, resp, err
}

// encode returns the wire bytes of a packet encoded by Mochi's packets package.
func encode(t *testing.T, pk packets.Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	default:
		t.Fatalf("encode: unexpected packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return buf.Bytes()
}

// rawConnect sends an MQTT 3.1.1 CONNECT on ws and waits for a successful CONNACK.
func rawConnect(t *testing.T, ws *websocket.Conn, clientID string) {
	t.Helper()
	connect := encode(t, packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: clientID,
			Clean:            true,
			Keepalive:        30,
		},
	})
	if err := ws.WriteMessage(websocket.BinaryMessage, connect); err != nil {
		t.Fatalf("write connect: %v", err)
	}
	msg := readBinary(t, ws)
	// CONNACK: type 2, remaining length 2, no session present, return code 0.
	if !bytes.Equal(msg, []byte{packets.Connack << 4, 2, 0, 0}) {
		t.Fatalf("connack = % x, want 20 02 00 00", msg)
	}
}

// readBinary reads one message, which must be binary, within the timeout.
func readBinary(t *testing.T, ws *websocket.Conn) []byte {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(timeout))
	typ, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.BinaryMessage {
		t.Fatalf("message type %d, want binary", typ)
	}
	return msg
}

// expectClose reads until the server closes ws and returns the close code it sent. It fails if
// the server does not close within the timeout.
func expectClose(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("server did not close the connection within %s", timeout)
		}
		return websocket.CloseAbnormalClosure // closed without a close message
	}
}

// client is a paho MQTT v5 client over a WebSocket connection dialled with gorilla.
type client struct {
	pc   *paho.Client
	msgs chan *paho.Publish
	down chan struct{} // closed when the connection fails or the server disconnects
}

// connectClient connects an MQTT v5 client over WebSocket (subprotocol mqtt), sending header
// with the upgrade request. It is disconnected at the end of the test.
func connectClient(t *testing.T, b *broker, clientID string, header http.Header) *client {
	t.Helper()
	ws, _, err := b.dial(t, header, "mqtt")
	if err != nil {
		t.Fatalf("client %s: dial: %v", clientID, err)
	}
	c := &client{msgs: make(chan *paho.Publish, 16), down: make(chan struct{})}
	var downOnce sync.Once
	gone := func() { downOnce.Do(func() { close(c.down) }) }
	c.pc = paho.NewClient(paho.ClientConfig{
		ClientID: clientID,
		Conn:     pahopackets.NewThreadSafeConn(wsnet.Conn(ws)), // paho writes a packet in several writes
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				select {
				case c.msgs <- pr.Packet:
				default: // a test that wants messages reads them; drop the rest
				}
				return true, nil
			},
		},
		OnClientError:      func(error) { gone() },
		OnServerDisconnect: func(*paho.Disconnect) { gone() },
	})
	t.Cleanup(func() {
		_ = c.pc.Disconnect(&paho.Disconnect{ReasonCode: 0})
		select {
		case <-c.pc.Done():
		case <-time.After(timeout):
			t.Errorf("client %s did not stop", clientID)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ack, err := c.pc.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
	if err != nil {
		t.Fatalf("client %s: connect: %v", clientID, err)
	}
	if ack.ReasonCode != 0 {
		t.Fatalf("client %s: connack reason %d", clientID, ack.ReasonCode)
	}
	return c
}

// roundTrip subscribes c to topic, publishes payload there and waits to receive it.
func (c *client) roundTrip(t *testing.T, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	suback, err := c.pc.Subscribe(ctx, &paho.Subscribe{
		Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}},
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if len(suback.Reasons) != 1 || suback.Reasons[0] != 1 {
		t.Fatalf("suback reasons = %v, want [1]", suback.Reasons)
	}
	if _, err := c.pc.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	for {
		select {
		case pk := <-c.msgs:
			if pk.Topic == topic && string(pk.Payload) == payload {
				return
			}
		case <-ctx.Done():
			t.Fatalf("message on %q not received within %s", topic, timeout)
		}
	}
}

// recorder is a slog.Handler that keeps every record, for checking what was logged.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }

func (r *recorder) WithGroup(string) slog.Handler { return r }

// at returns the records logged at level.
func (r *recorder) at(level slog.Level) []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Record
	for _, rec := range r.records {
		if rec.Level == level {
			out = append(out, rec)
		}
	}
	return out
}

// all renders every record, attributes included, as text.
func (r *recorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sb strings.Builder
	for _, rec := range r.records {
		sb.WriteString(rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			sb.WriteString(" " + a.String())
			return true
		})
		sb.WriteString("\n")
	}
	return sb.String()
}

// attr returns the value of the attribute key of rec.
func attr(rec slog.Record, key string) string {
	var v string
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}
