package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/wire"
)

func expectPresence(t *testing.T, c *mqtttest.Client, user string, online bool, connections int) {
	t.Helper()
	deadline := time.Now().Add(mqtttest.Timeout)
	var last wire.Presence
	for time.Now().Before(deadline) {
		p := c.Expect("presence/" + user)
		if err := json.Unmarshal(p.Payload, &last); err != nil {
			t.Fatalf("presence %s: %v", p.Payload, err)
		}
		if last.User == user && last.Online == online && last.Connections == connections {
			return
		}
	}
	t.Fatalf("presence of %s: last %+v, want online=%v connections=%d", user, last, online, connections)
}

// Presence counts the connections of a user and is retained for later subscribers; the user's
// connections get connection echoes.
func TestPresenceTwoConnections(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(b)})
	watcher.MustSubscribe("presence/+")

	p1 := mqtttest.Dial(t, "pat", mqtttest.Options{URL: tcpURL(b)})
	expectPresence(t, watcher, "pat", true, 1)
	p1.MustSubscribe("users/pat/events")
	p2 := mqtttest.Dial(t, "pat", mqtttest.Options{URL: wsURL(b)})
	expectPresence(t, watcher, "pat", true, 2)
	if ev := p1.ExpectEvent("users/pat/events", "connectionEcho"); ev["clientId"] != p2.ID || ev["connections"] != float64(2) {
		t.Errorf("connectionEcho = %v", ev)
	}

	late := mqtttest.Dial(t, "late", mqtttest.Options{URL: tcpURL(b)})
	late.MustSubscribe("presence/pat")
	expectPresence(t, late, "pat", true, 2) // retained

	p2.Close()
	expectPresence(t, watcher, "pat", true, 1)
	if ev := p1.ExpectEvent("users/pat/events", "disconnectionEcho"); ev["connections"] != float64(1) {
		t.Errorf("disconnectionEcho = %v", ev)
	}
	p1.Close()
	expectPresence(t, watcher, "pat", false, 0)
}

// A connection lost without DISCONNECT publishes its will, then the presence update.
func TestWillOnAbruptClose(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(b)})
	watcher.MustSubscribe("devices/+/status", "presence/+", "rooms/general")

	raw := mqtttest.DialConn(t, tcpURL(b))
	dev := paho.NewClient(paho.ClientConfig{Conn: raw})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if _, err := dev.Connect(ctx, &paho.Connect{
		ClientID: "sensor-1", Username: "sensor", UsernameFlag: true, CleanStart: true, KeepAlive: 30,
		WillMessage: &paho.WillMessage{Topic: "devices/sensor-1/status", Payload: []byte("offline"), QoS: 1},
	}); err != nil {
		t.Fatal(err)
	}
	expectPresence(t, watcher, "sensor", true, 1)
	_ = raw.Close() // abrupt: no DISCONNECT
	if p := watcher.Expect("devices/+/status"); string(p.Payload) != "offline" {
		t.Fatalf("will payload %q", p.Payload)
	}
	expectPresence(t, watcher, "sensor", false, 0)

	// A will to a room is a room message of its user; a clean DISCONNECT sends no will.
	v3, err := mqtttest.DialV3(t, tcpURL(b), "walt", "rooms/general")
	if err != nil {
		t.Fatal(err)
	}
	v3.Paho.Disconnect(100)
	expectPresence(t, watcher, "walt", false, 0)
	raw2 := mqtttest.DialConn(t, tcpURL(b))
	dev2 := paho.NewClient(paho.ClientConfig{Conn: raw2})
	if _, err := dev2.Connect(ctx, &paho.Connect{
		ClientID: "walt-2", Username: "walt", UsernameFlag: true, CleanStart: true, KeepAlive: 30,
		WillMessage: &paho.WillMessage{Topic: "rooms/general", Payload: []byte(`{"textMessage":"walt fell"}`), QoS: 1},
	}); err != nil {
		t.Fatal(err)
	}
	_ = raw2.Close()
	m := decodeRoomMsg(t, watcher.Expect("rooms/general"))
	if m.ID != 1 || m.Author != "walt" || m.TextMessage != "walt fell" {
		t.Fatalf("room will = %+v; the clean disconnect must not have sent one", m)
	}
}

// A keepalive timeout counts as a lost connection: the will follows within 1.5 x keepalive.
func TestWillOnKeepaliveTimeout(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(b)})
	watcher.MustSubscribe("devices/+/status")
	raw := mqtttest.DialConn(t, tcpURL(b))
	defer raw.Close()
	// A hand-written MQTT 3.1.1 CONNECT with keepalive 1 s and a will, then silence.
	if _, err := raw.Write(connectPacket("k1", "kk", 1, "devices/k1/status", "gone")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if p := watcher.Expect("devices/+/status"); string(p.Payload) != "gone" {
		t.Fatalf("will payload %q", p.Payload)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("will after %v, want within about 1.5 s", d)
	}
}

// connectPacket encodes an MQTT 3.1.1 CONNECT with clean session, a username and a QoS 1
// will.
func connectPacket(clientID, user string, keepalive uint16, willTopic, willPayload string) []byte {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append([]byte{}, str("MQTT")...)
	body = append(body, 0x04, 0x80|0x08|0x04|0x02, byte(keepalive>>8), byte(keepalive))
	body = append(body, str(clientID)...)
	body = append(body, str(willTopic)...)
	body = append(body, str(willPayload)...)
	body = append(body, str(user)...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// Clients get DISCONNECT 0x8B (v5) when the broker shuts down gracefully.
func TestGracefulShutdown(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	c := mqtttest.Dial(t, "sam", mqtttest.Options{URL: wsURL(b)})
	d := mqtttest.Dial(t, "sue", mqtttest.Options{URL: tcpURL(b)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*mqtttest.Client{c, d} {
		select {
		case <-cl.Lost():
		case <-time.After(mqtttest.Timeout):
			t.Fatalf("%s still connected after shutdown", cl.ID)
		}
		if dis := cl.ServerDisconnect(); dis == nil || dis.ReasonCode != 0x8B {
			t.Errorf("%s DISCONNECT = %+v, want 0x8B", cl.ID, dis)
		}
	}
	if _, err := net.DialTimeout("tcp", b.MQTTAddr(), time.Second); err == nil {
		t.Error("MQTT listener still accepts connections after shutdown")
	}
}

// A second connection with the same client id takes over the first (DISCONNECT 0x8E); the
// user still counts one connection.
func TestClientIDTakeover(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(b)})
	watcher.MustSubscribe("presence/tom")
	old := mqtttest.Dial(t, "tom", mqtttest.Options{URL: tcpURL(b), ClientID: "tom-car"})
	expectPresence(t, watcher, "tom", true, 1)
	fresh := mqtttest.Dial(t, "tom", mqtttest.Options{URL: wsURL(b), ClientID: "tom-car"})
	select {
	case <-old.Lost():
	case <-time.After(mqtttest.Timeout):
		t.Fatal("old connection not taken over")
	}
	if d := old.ServerDisconnect(); d == nil || d.ReasonCode != 0x8E {
		t.Errorf("old connection got %+v, want DISCONNECT 0x8E", d)
	}
	var sockets map[string][]string
	fresh.MustRPC("listOwnSockets", map[string]any{}, &sockets)
	if len(sockets) != 1 {
		t.Errorf("listOwnSockets after takeover = %v, want one connection", sockets)
	}
	fresh.Close()
	expectPresence(t, watcher, "tom", false, 0)
}

// An MQTT 5 will with a delay is published after the delay, and not at all when the client
// reconnects in time [MQTT-3.1.3-9].
func TestWillDelay(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(b)})
	watcher.MustSubscribe("devices/+/status")
	delayed := func(id string, delay uint32) func(*paho.Connect) {
		return func(cp *paho.Connect) {
			cp.WillMessage = &paho.WillMessage{Topic: "devices/" + id + "/status", Payload: []byte(id + " gone"), QoS: 1}
			cp.WillProperties = &paho.WillProperties{WillDelayInterval: &delay}
		}
	}
	// d1 dies and stays away: its will comes after about a second, not at once.
	conn1 := mqtttest.DialConn(t, tcpURL(b))
	d1 := paho.NewClient(paho.ClientConfig{Conn: conn1})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	cp := &paho.Connect{ClientID: "d1", Username: "dev", UsernameFlag: true, CleanStart: true, KeepAlive: 30}
	delayed("d1", 1)(cp)
	if _, err := d1.Connect(ctx, cp); err != nil {
		t.Fatal(err)
	}
	// d2 dies and comes back within its delay: no will.
	conn2 := mqtttest.DialConn(t, tcpURL(b))
	d2 := paho.NewClient(paho.ClientConfig{Conn: conn2})
	cp2 := &paho.Connect{ClientID: "d2", Username: "dev", UsernameFlag: true, CleanStart: true, KeepAlive: 30}
	delayed("d2", 2)(cp2)
	if _, err := d2.Connect(ctx, cp2); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn1.Close()
	_ = conn2.Close()
	mqtttest.Dial(t, "dev", mqtttest.Options{URL: tcpURL(b), ClientID: "d2"})
	p := watcher.Expect("devices/+/status")
	if string(p.Payload) != "d1 gone" {
		t.Fatalf("got will %q, want d1's only", p.Payload)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("will published after %v, before its 1 s delay", d)
	}
	// d2's will would have come 2 s after the loss; wait that long to see it does not.
	watcher.ExpectNone("devices/d2/status", 2*time.Second-time.Since(start)+200*time.Millisecond)
}

// Shutdown completes while clients are disconnecting (Mochi's own way of closing listener
// clients could deadlock against a disconnecting client).
func TestShutdownUnderChurn(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	const n = 40
	conns := make([]net.Conn, n)
	for i := range conns {
		conn, err := net.DialTimeout("tcp", b.MQTTAddr(), mqtttest.Timeout)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(connectPacket(fmt.Sprintf("churn-%d", i), "churn", 30, "devices/churn/status", "x")); err != nil {
			t.Fatal(err)
		}
		connack := make([]byte, 4)
		_ = conn.SetReadDeadline(time.Now().Add(mqtttest.Timeout))
		if _, err := io.ReadFull(conn, connack); err != nil || connack[0] != 0x20 {
			t.Fatalf("CONNACK %x: %v", connack, err)
		}
		conns[i] = conn
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // clients leave while the broker shuts down
		defer wg.Done()
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- b.Shutdown(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not complete while clients were leaving")
	}
	wg.Wait()
}

// Presence changes while other clients subscribe to presence/+: under the race detector this
// checks that updating a retained presence does not race with Mochi's scan of retained
// messages for a wildcard subscription (see hooks.Router.retain).
func TestPresenceChangesDuringWildcardSubscribes(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	first := mqtttest.Dial(t, "flip", mqtttest.Options{URL: tcpURL(b)}) // presence/flip is retained from here on
	defer first.Close()
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(b)})
	stop, failed := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(failed)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
			_, err := watcher.Paho.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "presence/+"}}})
			if err == nil {
				_, err = watcher.Paho.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"presence/+"}})
			}
			cancel()
			if err != nil {
				failed <- err
				return
			}
		}
	}()
	for range 30 {
		mqtttest.Dial(t, "flip", mqtttest.Options{URL: tcpURL(b)}).Close()
	}
	close(stop)
	if err := <-failed; err != nil {
		t.Fatalf("subscribe to presence/+: %v", err)
	}
}
