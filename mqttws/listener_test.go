package mqttws_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/mqttws"
)

func TestRoundTripOverWebSocket(t *testing.T) {
	b := startBroker(t, mqttws.Options{})

	// The listener shares the mux and the port with other routes.
	resp, err := b.ts.Client().Get(b.ts.URL + "/healthz")
	if err != nil {
		t.Fatalf("get /healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != healthBody {
		t.Fatalf("/healthz = %d %q, want 200 %q", resp.StatusCode, body, healthBody)
	}

	c := connectClient(t, b, "round-trip", nil)
	c.roundTrip(t, "rooms/lobby", "hello over websocket")
	if got := b.connected(); got != 1 {
		t.Fatalf("connected clients = %d, want 1", got)
	}
}

func TestListenerIdentity(t *testing.T) {
	l, err := mqttws.New(mqttws.Options{ID: "ws1", Address: ":8080/mqtt"})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if l.ID() != "ws1" || l.Address() != ":8080/mqtt" || l.Protocol() != "ws" {
		t.Fatalf("ID, Address, Protocol = %q, %q, %q", l.ID(), l.Address(), l.Protocol())
	}
	if err := l.Init(slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("init: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		opts mqttws.Options
		want error
	}{
		{"defaults", mqttws.Options{ID: "ws"}, nil},
		{"allowlist", mqttws.Options{ID: "ws", AllowedOrigins: []string{"https://app.example.com", "http://localhost:3000", "*"}}, nil},
		{"no id", mqttws.Options{}, mqttws.ErrNoID},
		{"origin without scheme", mqttws.Options{ID: "ws", AllowedOrigins: []string{"app.example.com"}}, mqttws.ErrBadOrigin},
		{"origin with trailing slash", mqttws.Options{ID: "ws", AllowedOrigins: []string{"https://app.example.com/"}}, mqttws.ErrBadOrigin},
		{"origin with path", mqttws.Options{ID: "ws", AllowedOrigins: []string{"https://app.example.com/chat"}}, mqttws.ErrBadOrigin},
		{"empty origin", mqttws.Options{ID: "ws", AllowedOrigins: []string{""}}, mqttws.ErrBadOrigin},
		{"negative read limit", mqttws.Options{ID: "ws", ReadLimit: -1}, mqttws.ErrBadReadLimit},
		{"negative handshake timeout", mqttws.Options{ID: "ws", HandshakeTimeout: -time.Second}, mqttws.ErrBadHandshakeTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := mqttws.New(tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("New error = %v, want %v", err, tt.want)
			}
			if (err == nil) != (l != nil) {
				t.Fatalf("New returned listener %v with error %v", l, err)
			}
		})
	}
}

func TestOrigin(t *testing.T) {
	allowed := []string{"https://app.example.com", "http://localhost:3000"}
	tests := []struct {
		name    string
		allowed []string
		origin  string // "" sends no Origin header; "SAME" the server's own http://host:port
		want    int
	}{
		{"no origin", allowed, "", http.StatusSwitchingProtocols},
		{"same host", nil, "SAME", http.StatusSwitchingProtocols},
		{"in allowlist", allowed, "https://app.example.com", http.StatusSwitchingProtocols},
		{"in allowlist, other case", allowed, "HTTPS://App.Example.com", http.StatusSwitchingProtocols},
		{"in allowlist with port", allowed, "http://localhost:3000", http.StatusSwitchingProtocols},
		{"wildcard", []string{"*"}, "https://anywhere.example", http.StatusSwitchingProtocols},
		{"not allowed", allowed, "https://evil.example", http.StatusForbidden},
		{"no allowlist", nil, "https://app.example.com", http.StatusForbidden},
		{"other scheme", allowed, "http://app.example.com", http.StatusForbidden},
		{"other port", allowed, "http://localhost:3001", http.StatusForbidden},
		{"with path", allowed, "https://app.example.com/x", http.StatusForbidden},
		{"suffix trick", allowed, "https://app.example.com.evil.example", http.StatusForbidden},
		{"opaque null", allowed, "null", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBroker(t, mqttws.Options{AllowedOrigins: tt.allowed})
			header := http.Header{}
			switch tt.origin {
			case "":
			case "SAME":
				header.Set("Origin", b.ts.URL)
			default:
				header.Set("Origin", tt.origin)
			}
			ws, resp, err := b.dial(t, header, "mqtt")
			if resp == nil {
				t.Fatalf("dial: no response: %v", err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d (%v), want %d", resp.StatusCode, err, tt.want)
			}
			if tt.want == http.StatusSwitchingProtocols {
				rawConnect(t, ws, "origin-"+strings.ReplaceAll(tt.name, " ", "-"))
			}
		})
	}
}

func TestAllowedOriginClient(t *testing.T) {
	b := startBroker(t, mqttws.Options{AllowedOrigins: []string{"https://app.example.com"}})
	c := connectClient(t, b, "browser-like", http.Header{"Origin": {"https://app.example.com"}})
	c.roundTrip(t, "rooms/allowed", "from an allowed origin")
}

func TestRefusedOriginLoggedOnce(t *testing.T) {
	rec := new(recorder)
	b := startBroker(t, mqttws.Options{Logger: slog.New(rec)})
	header := http.Header{
		"Origin": {"https://evil.example"},
		"Cookie": {"session=cookie-secret"},
	}
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: timeout}
	ws, resp, err := d.Dial(b.url+"?token=query-secret", header)
	if ws != nil {
		_ = ws.Close()
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial = %v, %v; want 403", resp, err)
	}
	_ = resp.Body.Close()

	warns := rec.at(slog.LevelWarn)
	if len(warns) != 1 {
		t.Fatalf("%d warnings logged, want 1:\n%s", len(warns), rec.all())
	}
	if got := attr(warns[0], "origin"); got != "https://evil.example" {
		t.Fatalf("logged origin = %q, want https://evil.example", got)
	}
	if logs := rec.all(); strings.Contains(logs, "secret") {
		t.Fatalf("log leaks a cookie or query string:\n%s", logs)
	}
}

func TestInitLogger(t *testing.T) {
	refuse := func(t *testing.T, l *mqttws.Listener) {
		t.Helper()
		go l.Serve(func(string, net.Conn) error { return nil })
		t.Cleanup(func() { l.Close(func(string) {}) })
		waitFor(t, timeout, func() bool { return serveStatus(l, nil) != http.StatusServiceUnavailable })
		if got := serveStatus(l, http.Header{"Origin": {"https://evil.example"}}); got != http.StatusForbidden {
			t.Fatalf("status = %d, want 403", got)
		}
	}

	t.Run("from Init when Options has none", func(t *testing.T) {
		l, err := mqttws.New(mqttws.Options{ID: "ws"})
		if err != nil {
			t.Fatalf("new: %v", err)
		}
		rec := new(recorder)
		if err := l.Init(slog.New(rec)); err != nil {
			t.Fatalf("init: %v", err)
		}
		refuse(t, l)
		if n := len(rec.at(slog.LevelWarn)); n != 1 {
			t.Fatalf("Init logger got %d warnings, want 1", n)
		}
	})
	t.Run("Options wins over Init", func(t *testing.T) {
		own, mochi := new(recorder), new(recorder)
		l, err := mqttws.New(mqttws.Options{ID: "ws", Logger: slog.New(own)})
		if err != nil {
			t.Fatalf("new: %v", err)
		}
		if err := l.Init(slog.New(mochi)); err != nil {
			t.Fatalf("init: %v", err)
		}
		refuse(t, l)
		if n, m := len(own.at(slog.LevelWarn)), len(mochi.at(slog.LevelWarn)); n != 1 || m != 0 {
			t.Fatalf("warnings: options logger %d, Init logger %d; want 1, 0", n, m)
		}
	})
}

func TestSubprotocols(t *testing.T) {
	tests := []struct {
		name    string
		offered []string
		status  int
		chosen  string
	}{
		{"none offered", nil, http.StatusSwitchingProtocols, ""},
		{"mqtt", []string{"mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{"mqttv3.1", []string{"mqttv3.1"}, http.StatusSwitchingProtocols, "mqttv3.1"},
		{"mqtt preferred", []string{"mqttv3.1", "mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{"unknown then mqtt", []string{"chat", "mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{"unknown only", []string{"chat"}, http.StatusBadRequest, ""},
		{"wrong case", []string{"MQTT"}, http.StatusBadRequest, ""},
	}
	b := startBroker(t, mqttws.Options{})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := b.dial(t, nil, tt.offered...)
			if resp == nil {
				t.Fatalf("dial: no response: %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d (%v), want %d", resp.StatusCode, err, tt.status)
			}
			if ws == nil {
				return
			}
			if got := ws.Subprotocol(); got != tt.chosen {
				t.Fatalf("subprotocol = %q, want %q", got, tt.chosen)
			}
			// MQTT works whichever was negotiated.
			rawConnect(t, ws, "subprotocol-"+string(rune('a'+i)))
		})
	}
}

func TestPacketsSpanMessages(t *testing.T) {
	b := startBroker(t, mqttws.Options{})
	ws, _, err := b.dial(t, nil, "mqtt")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	rawConnect(t, ws, "spanner")

	// Two PINGREQs split across three messages: MQTT packets need not align with
	// WebSocket messages [MQTT-6.0.0-2].
	ping := encode(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	stream := append(append([]byte{}, ping...), ping...)
	for _, part := range [][]byte{stream[:1], stream[1:3], stream[3:]} {
		if err := ws.WriteMessage(websocket.BinaryMessage, part); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	// An empty message in between is harmless.
	if err := ws.WriteMessage(websocket.BinaryMessage, nil); err != nil {
		t.Fatalf("write: %v", err)
	}
	for range 2 {
		if msg := readBinary(t, ws); len(msg) != 2 || msg[0] != packets.Pingresp<<4 {
			t.Fatalf("got % x, want PINGRESP", msg)
		}
	}
}

func TestReadLimit(t *testing.T) {
	const limit = 4096
	b := startBroker(t, mqttws.Options{ReadLimit: limit})

	other := connectClient(t, b, "bystander", nil)
	other.roundTrip(t, "rooms/before", "before")

	ws, _, err := b.dial(t, nil, "mqtt")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	rawConnect(t, ws, "big-sender")
	waitFor(t, timeout, func() bool { return b.connected() == 2 })

	// A message of exactly the limit is accepted.
	if err := ws.WriteMessage(websocket.BinaryMessage, publishOfSize(t, limit)); err != nil {
		t.Fatalf("write: %v", err)
	}
	ping := encode(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if err := ws.WriteMessage(websocket.BinaryMessage, ping); err != nil {
		t.Fatalf("write ping: %v", err)
	}
	if msg := readBinary(t, ws); len(msg) != 2 || msg[0] != packets.Pingresp<<4 {
		t.Fatalf("got % x, want PINGRESP", msg)
	}

	// One byte more closes this connection with 1009 and nothing else.
	if err := ws.WriteMessage(websocket.BinaryMessage, publishOfSize(t, limit+1)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if code := expectClose(t, ws); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code = %d, want %d", code, websocket.CloseMessageTooBig)
	}
	waitFor(t, timeout, func() bool { return b.connected() == 1 })
	select {
	case <-other.down:
		t.Fatal("the other client was disconnected")
	default:
	}
	other.roundTrip(t, "rooms/after", "after")
}

// publishOfSize returns an encoded QoS 0 PUBLISH of exactly size bytes.
func publishOfSize(t *testing.T, size int) []byte {
	t.Helper()
	for n := size - 16; n <= size; n++ {
		msg := encode(t, packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish},
			TopicName:   "big",
			Payload:     make([]byte, n),
		})
		if len(msg) == size {
			return msg
		}
	}
	t.Fatalf("no publish of %d bytes", size)
	return nil
}

func TestTextMessageClosesConnection(t *testing.T) {
	b := startBroker(t, mqttws.Options{})
	ws, _, err := b.dial(t, nil, "mqtt")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	rawConnect(t, ws, "texter")
	waitFor(t, timeout, func() bool { return b.connected() == 1 })

	ping := encode(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if err := ws.WriteMessage(websocket.TextMessage, ping); err != nil {
		t.Fatalf("write: %v", err)
	}
	if code := expectClose(t, ws); code != websocket.CloseUnsupportedData {
		t.Fatalf("close code = %d, want %d", code, websocket.CloseUnsupportedData)
	}
	waitFor(t, timeout, func() bool { return b.connected() == 0 })
}

func TestHandshakeTimeoutWithoutConnect(t *testing.T) {
	b := startBroker(t, mqttws.Options{HandshakeTimeout: 100 * time.Millisecond})
	ws, _, err := b.dial(t, nil, "mqtt")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	// Send nothing: the server must drop the connection well within the test timeout.
	start := time.Now()
	expectClose(t, ws)
	if d := time.Since(start); d > timeout/2 {
		t.Fatalf("closed after %s", d)
	}

	// A client that sends CONNECT in time keeps its connection past the handshake time.
	ws2, _, err := b.dial(t, nil, "mqtt")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	rawConnect(t, ws2, "in-time")
	deadline := time.Now().Add(300 * time.Millisecond)
	ping := encode(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	for time.Now().Before(deadline) {
		if err := ws2.WriteMessage(websocket.BinaryMessage, ping); err != nil {
			t.Fatalf("write ping: %v", err)
		}
		if msg := readBinary(t, ws2); msg[0] != packets.Pingresp<<4 {
			t.Fatalf("got % x, want PINGRESP", msg)
		}
	}
}

// serveStatus runs one non-upgrade request through l and returns the status.
func serveStatus(l http.Handler, header http.Header) int {
	r := httptest.NewRequest(http.MethodGet, "http://broker.test/mqtt", nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	l.ServeHTTP(w, r)
	return w.Code
}

func TestServeAndClose(t *testing.T) {
	l, err := mqttws.New(mqttws.Options{ID: "ws-life"})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if got := serveStatus(l, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("before Serve: status = %d, want 503", got)
	}

	served := make(chan struct{})
	go func() {
		defer close(served)
		l.Serve(func(string, net.Conn) error { return nil })
	}()
	waitFor(t, timeout, func() bool { return serveStatus(l, nil) != http.StatusServiceUnavailable })
	if got := serveStatus(l, nil); got != http.StatusBadRequest {
		t.Fatalf("serving, plain GET: status = %d, want 400", got)
	}

	closed := make(chan string, 2)
	l.Close(func(id string) { closed <- id })
	select {
	case <-served:
	case <-time.After(timeout):
		t.Fatal("Serve did not return after Close")
	}
	if id := <-closed; id != "ws-life" {
		t.Fatalf("closeClients got id %q, want ws-life", id)
	}
	if got := serveStatus(l, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("after Close: status = %d, want 503", got)
	}

	l.Close(func(string) {}) // again: harmless
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Serve(func(string, net.Conn) error { return nil }) // after Close: returns at once
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatal("Serve after Close did not return")
	}
	if got := serveStatus(l, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("Serve after Close: status = %d, want 503", got)
	}
}

func TestServerCloseDisconnectsClients(t *testing.T) {
	b := startBroker(t, mqttws.Options{})
	c := connectClient(t, b, "to-be-closed", nil)

	// A connection that upgraded but has not sent CONNECT is not yet Mochi's client.
	pending, _, err := b.dial(t, nil, "mqtt")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	waitFor(t, timeout, func() bool { return b.connected() == 1 })

	// Close the Mochi server only: the HTTP server keeps running and must answer 503.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		b.closeMochi()
	}()
	select {
	case <-closed:
	case <-time.After(timeout):
		t.Fatal("server close did not return")
	}

	select {
	case <-c.down:
	case <-time.After(timeout):
		t.Fatal("connected client was not disconnected")
	}
	if code := expectClose(t, pending); code != websocket.CloseGoingAway {
		t.Fatalf("pending connection close code = %d, want %d", code, websocket.CloseGoingAway)
	}
	if got := b.status(t); got != http.StatusServiceUnavailable {
		t.Fatalf("after server close: status = %d, want 503", got)
	}
	if _, resp, _ := b.dial(t, nil, "mqtt"); resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after close: %v, want 503", resp)
	}
}
