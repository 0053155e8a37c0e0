package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/gateway"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/redistest"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

func gwURL(b *broker.Broker) string { return "ws://" + b.HTTPAddr() + "/v1/ws" }

// gwFrame is a server frame of the gateway.
type gwFrame struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// gwClient is a JSON WebSocket gateway client.
type gwClient struct {
	t  *testing.T
	ws *websocket.Conn
}

// dialGateway opens a gateway connection with sid in the cookie hu60_sid (cookie) or in the
// query _sid, and expects the connected frame.
func dialGateway(t *testing.T, b *broker.Broker, sid string, cookie bool) *gwClient {
	t.Helper()
	ws, resp, err := dialGatewayRaw(b, sid, cookie, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial gateway as %q: %v (HTTP %d)", sid, err, status)
	}
	c := &gwClient{t: t, ws: ws}
	t.Cleanup(func() { _ = ws.Close() })
	if f := c.next(); f.Event != gateway.EventConnected || f.Data != nil {
		t.Fatalf("first frame %+v, want connected", f)
	}
	return c
}

func dialGatewayRaw(b *broker.Broker, sid string, cookie bool, header http.Header) (*websocket.Conn, *http.Response, error) {
	u := gwURL(b)
	if header == nil {
		header = http.Header{}
	}
	switch {
	case sid == "":
	case cookie:
		header.Add("Cookie", acl.SessionCookie+"="+sid+"; theme=dark")
	default:
		u += "?" + acl.SessionQueryParam + "=" + url.QueryEscape(sid)
	}
	d := websocket.Dialer{HandshakeTimeout: mqtttest.Timeout}
	return d.Dial(u, header)
}

// send writes a client frame.
func (c *gwClient) send(frame string) {
	c.t.Helper()
	_ = c.ws.SetWriteDeadline(time.Now().Add(mqtttest.Timeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.t.Fatalf("send %s: %v", frame, err)
	}
}

// next returns the next server frame.
func (c *gwClient) next() gwFrame {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(mqtttest.Timeout))
	typ, b, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read a gateway frame: %v", err)
	}
	if typ != websocket.TextMessage {
		c.t.Fatalf("frame of type %d, want text", typ)
	}
	var f gwFrame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

// expect returns the next frame of event, skipping others.
func (c *gwClient) expect(event string) gwFrame {
	c.t.Helper()
	deadline := time.Now().Add(mqtttest.Timeout)
	for time.Now().Before(deadline) {
		if f := c.next(); f.Event == event {
			return f
		}
	}
	c.t.Fatalf("no %s frame", event)
	return gwFrame{}
}

// expectPresence waits for an online or offline frame of uid with count.
func (c *gwClient) expectPresence(event, uid string, count int) {
	c.t.Helper()
	deadline := time.Now().Add(mqtttest.Timeout)
	for time.Now().Before(deadline) {
		f := c.expect(event)
		var d struct {
			UID   string `json:"uid"`
			Count int    `json:"count"`
		}
		if err := json.Unmarshal(f.Data, &d); err != nil {
			c.t.Fatalf("%s data %s: %v", event, f.Data, err)
		}
		if d.UID == uid && d.Count == count {
			return
		}
	}
	c.t.Fatalf("no %s frame of %s with count %d", event, uid, count)
}

// expectError expects an error frame with code as the next frame.
func (c *gwClient) expectError(code wire.Code) {
	c.t.Helper()
	f := c.next()
	var e wire.Error
	if f.Event != gateway.EventError || json.Unmarshal(f.Data, &e) != nil || e.Code != code || e.Message == "" {
		c.t.Fatalf("frame %s %s, want an error %s", f.Event, f.Data, code)
	}
}

// ping sends a ping and expects the pong as the next frame but presence frames (all of them
// when strict).
func (c *gwClient) ping(strict bool) {
	c.t.Helper()
	c.send(`{"action":"ping"}`)
	for {
		f := c.next()
		if !strict && (f.Event == gateway.EventOnline || f.Event == gateway.EventOffline) {
			continue
		}
		if f.Event != gateway.EventPing || string(f.Data) != `"pong"` {
			c.t.Fatalf("answer to ping: %s %s", f.Event, f.Data)
		}
		return
	}
}

// lsol asks for the online users.
func (c *gwClient) lsol(data string) map[string]int {
	c.t.Helper()
	if data == "" {
		c.send(`{"action":"lsol"}`)
	} else {
		c.send(`{"action":"lsol","data":` + data + `}`)
	}
	f := c.expect(gateway.EventLsol)
	var out map[string]int
	if err := json.Unmarshal(f.Data, &out); err != nil {
		c.t.Fatalf("lsol data %s: %v", f.Data, err)
	}
	return out
}

func TestGatewaySession(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	for _, tc := range []struct {
		name   string
		sid    string
		header http.Header
		status int
	}{
		{"no session", "", nil, http.StatusUnauthorized},
		{"invalid user name", "a/b", nil, http.StatusUnauthorized},
		{"other cookies only", "", http.Header{"Cookie": {"theme=dark"}}, http.StatusUnauthorized},
		{"origin not allowed", "alice", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, resp, err := dialGatewayRaw(b, tc.sid, false, tc.header)
			if err == nil {
				_ = ws.Close()
				t.Fatal("upgraded")
			}
			if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("err %v, response %+v; want HTTP %d", err, resp, tc.status)
			}
		})
	}
	// The session from the cookie or the query; the same origin is allowed.
	dialGateway(t, b, "alice", true)
	dialGateway(t, b, "bob", false)
	ws, _, err := dialGatewayRaw(b, "carol", true, http.Header{"Origin": {"http://" + b.HTTPAddr()}})
	if err != nil {
		t.Fatalf("same origin: %v", err)
	}
	_ = ws.Close()
	mqtttest.WaitFor(t, mqtttest.Timeout, "gateway connections in /metrics", func() bool {
		s := scrapeMetrics(t, b)
		return s.has(2, "roomq_connections", "transport="+gateway.Transport) &&
			s.has(3, "roomq_connections_opened_total", "transport="+gateway.Transport)
	})
}

func TestGatewayFrames(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	c := dialGateway(t, b, "alice", true)
	c.expectPresence(gateway.EventOnline, "alice", 1) // its own: every event is subscribed
	c.ping(true)

	// Bad frames and unknown actions get an error frame; the connection stays open.
	c.send(`not json`)
	c.expectError(wire.CodeBadArgument)
	c.send(`{"data":1}`)
	c.expectError(wire.CodeBadArgument)
	c.send(`{"action":"chat","data":"hi"}`)
	c.expectError(wire.CodeNoCommand)
	_ = c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"action":"ping"}`))
	c.expectError(wire.CodeBadArgument)
	c.send(`{"action":"sub","data":["msg","typing"]}`)
	c.expectError(wire.CodeBadArgument)
	c.send(`{"action":"unsub","data":"msg"}`)
	c.expectError(wire.CodeBadArgument)
	c.send(`{"action":"sub"}`)
	c.expectError(wire.CodeBadArgument)
	c.send(`{"action":"lsol","data":{"a":1}}`)
	c.expectError(wire.CodeBadArgument)
	c.ping(true)

	// Every event is subscribed by default; unsub and sub change the list lsunsub shows.
	lsunsub := func(want string) {
		t.Helper()
		c.send(`{"action":"lsunsub"}`)
		if f := c.next(); f.Event != gateway.ActionLsunsub || string(f.Data) != want {
			t.Fatalf("lsunsub: %s %s, want data %s", f.Event, f.Data, want)
		}
	}
	ok := func(action string) {
		t.Helper()
		if f := c.next(); f.Event != action || string(f.Data) != `"ok"` {
			t.Fatalf("answer to %s: %s %s", action, f.Event, f.Data)
		}
	}
	lsunsub(`[]`)
	c.send(`{"action":"sub","data":[]}`)
	ok(gateway.ActionSub)
	c.send(`{"action":"unsub","data":["online","offline"]}`)
	ok(gateway.ActionUnsub)
	lsunsub(`["offline","online"]`)
	c.send(`{"action":"sub","data":["offline"]}`)
	ok(gateway.ActionSub)
	lsunsub(`["online"]`)

	// A frame over the size limit closes the connection (1009).
	c.send(`{"action":"ping","data":"` + strings.Repeat("x", int(gateway.DefaultReadLimit)) + `"}`)
	_ = c.ws.SetReadDeadline(time.Now().Add(mqtttest.Timeout))
	_, _, err := c.ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("after a frame over the limit: %v, want close 1009", err)
	}
}

// A direct message sent by an MQTT user, or pushed by a backend, reaches the gateway
// connections of the recipient as the same JSON MQTT subscribers get.
func TestGatewayDirectMessages(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	gw1 := dialGateway(t, b, "alice", true)
	gw2 := dialGateway(t, b, "alice", false)
	other := dialGateway(t, b, "carol", false)
	mq := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	mq.MustSubscribe("users/alice/inbox")
	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(b)})

	expectSame := func(what string) {
		t.Helper()
		got := mq.Expect("users/alice/inbox").Payload
		for _, c := range []*gwClient{gw1, gw2} {
			if f := c.expect(gateway.EventMsg); !bytes.Equal(f.Data, got) {
				t.Errorf("%s: gateway msg %s, MQTT %s", what, f.Data, got)
			}
		}
	}
	if rc := bob.Publish("users/alice/inbox", 1, text("hi from MQTT"), nil); rc != 0 {
		t.Fatalf("PUBACK 0x%02x", rc)
	}
	expectSame("published by bob")

	_, rpcErr := bob.RPC("directMessage", map[string]any{"user": "alice", "message": map[string]string{"textMessage": "by RPC"}})
	if rpcErr != nil {
		t.Fatalf("directMessage: %v", rpcErr)
	}
	expectSame("sent by RPC")

	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if _, err := b.API().SendDirect(ctx, "hu60", "alice", text("pushed")); err != nil {
		t.Fatalf("SendDirect: %v", err)
	}
	got := mq.Expect("users/alice/inbox").Payload
	var m struct {
		Author      string `json:"author"`
		TextMessage string `json:"textMessage"`
		Timestamp   int64  `json:"timestamp"`
	}
	if err := json.Unmarshal(got, &m); err != nil || m.Author != "hu60" || m.TextMessage != "pushed" || m.Timestamp == 0 {
		t.Errorf("pushed message %s", got)
	}
	for _, c := range []*gwClient{gw1, gw2} {
		if f := c.expect(gateway.EventMsg); !bytes.Equal(f.Data, got) {
			t.Errorf("pushed: gateway msg %s, MQTT %s", f.Data, got)
		}
	}
	if _, err := b.API().SendDirect(ctx, "hu60", "nobody", text("x")); wire.CodeOf(err) != wire.CodeNoUserOnline {
		t.Errorf("SendDirect to a user without connection: %v, want noUserOnline", err)
	}
	if _, err := b.API().SendDirect(ctx, "hu60", "alice", []byte(`{"html":"x"}`)); wire.CodeOf(err) != wire.CodeBadMessage {
		t.Errorf("SendDirect of a bad message: %v, want badMessage", err)
	}

	// Only alice's connections get her messages; an unsubscribed connection gets none.
	gw2.send(`{"action":"unsub","data":["msg"]}`)
	gw2.expect(gateway.ActionUnsub)
	if rc := bob.Publish("users/alice/inbox", 1, text("again"), nil); rc != 0 {
		t.Fatalf("PUBACK 0x%02x", rc)
	}
	gw1.expect(gateway.EventMsg) // queued to every connection of alice at once
	gw2.ping(false)
	other.ping(false)
}

// A gateway connection is a connection of its user: presence counts it on MQTT and it is in
// listOwnSockets; MQTT users' presence reaches the gateway as online and offline frames.
func TestGatewayPresence(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(b)})
	watcher.MustSubscribe("presence/+")

	gw := dialGateway(t, b, "alice", true)
	expectPresence(t, watcher, "alice", true, 1)
	gw.expectPresence(gateway.EventOnline, "alice", 1)

	mq := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	expectPresence(t, watcher, "alice", true, 2)
	gw.expectPresence(gateway.EventOnline, "alice", 2)
	var sockets map[string][]string
	mq.MustRPC("listOwnSockets", map[string]any{}, &sockets)
	var gwID string
	for id := range sockets {
		if strings.HasPrefix(id, gateway.ClientIDPrefix) {
			gwID = id
		}
	}
	if len(sockets) != 2 || gwID == "" || sockets[mq.ID] == nil {
		t.Fatalf("listOwnSockets = %v, want %s and a gateway connection", sockets, mq.ID)
	}

	// disconnect ends a gateway connection of the caller (close 1008) on this instance.
	gw2 := dialGateway(t, b, "alice", false)
	gw.expectPresence(gateway.EventOnline, "alice", 3)
	sockets = nil
	mq.MustRPC("listOwnSockets", map[string]any{}, &sockets)
	for id := range sockets {
		if strings.HasPrefix(id, gateway.ClientIDPrefix) && id != gwID {
			mq.MustRPC("disconnect", map[string]any{"clientId": id}, nil)
		}
	}
	for {
		_ = gw2.ws.SetReadDeadline(time.Now().Add(mqtttest.Timeout))
		if _, _, err := gw2.ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
				t.Fatalf("after disconnect: %v, want close 1008", err)
			}
			break
		}
	}
	gw.expectPresence(gateway.EventOffline, "alice", 2)

	carol := mqtttest.Dial(t, "carol", mqtttest.Options{URL: wsURL(b)})
	gw.expectPresence(gateway.EventOnline, "carol", 1)
	if got := gw.lsol(""); got["alice"] != 2 || got["carol"] != 1 || got["watcher"] != 1 || len(got) != 3 {
		t.Errorf("lsol = %v", got)
	}
	if got := gw.lsol(`["carol","nobody"]`); len(got) != 2 || got["carol"] != 1 || got["nobody"] != 0 {
		t.Errorf("lsol of two users = %v", got)
	}
	carol.Close()
	gw.expectPresence(gateway.EventOffline, "carol", 0)

	// Without online and offline, presence frames stop.
	gw.send(`{"action":"unsub","data":["online","offline"]}`)
	gw.expect(gateway.ActionUnsub)
	witness := dialGateway(t, b, "witness", false)
	witness.expectPresence(gateway.EventOnline, "witness", 1)
	gw.ping(true) // the online frame of witness would have been queued before the pong

	_ = gw.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	expectPresence(t, watcher, "alice", true, 1)
	witness.expectPresence(gateway.EventOffline, "alice", 1)
	mq.Close()
	expectPresence(t, watcher, "alice", false, 0)
	witness.expectPresence(gateway.EventOffline, "alice", 0)
}

// Across two instances sharing a store: a direct message sent on one reaches the gateway on
// the other, and presence crosses both ways.
func TestGatewayAcrossInstances(t *testing.T) {
	st := store.NewMemory()
	gatewayAcrossInstances(t, func() store.Store { return st })
}

// The same on Redis.
func TestGatewayAcrossRedisInstances(t *testing.T) {
	addr := redistest.Standalone(t)
	gatewayAcrossInstances(t, func() store.Store { return redisStore(t, []string{addr}, "gw") })
}

// gatewayAcrossInstances runs the cross-instance test on brokers whose stores newStore makes
// (one shared store, or one client each of a shared Redis).
func gatewayAcrossInstances(t *testing.T, newStore func() store.Store) {
	var bs []*broker.Broker
	for range 2 {
		st := newStore()
		bs = append(bs, mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st }))
	}
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(bs[0])})
	watcher.MustSubscribe("presence/+")

	gw := dialGateway(t, bs[1], "alice", false)
	expectPresence(t, watcher, "alice", true, 1)

	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(bs[0])})
	gw.expectPresence(gateway.EventOnline, "bob", 1)
	if rc := bob.Publish("users/alice/inbox", 1, text("across"), nil); rc != 0 {
		t.Fatalf("PUBACK 0x%02x", rc)
	}
	var m struct {
		Author      string `json:"author"`
		TextMessage string `json:"textMessage"`
	}
	if f := gw.expect(gateway.EventMsg); json.Unmarshal(f.Data, &m) != nil || m.Author != "bob" || m.TextMessage != "across" {
		t.Errorf("msg %s", f.Data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if _, err := bs[0].API().SendDirect(ctx, "hu60", "alice", text("pushed across")); err != nil {
		t.Fatalf("SendDirect: %v", err)
	}
	if f := gw.expect(gateway.EventMsg); !bytes.Contains(f.Data, []byte("pushed across")) {
		t.Errorf("msg %s", f.Data)
	}

	// An instance started later knows who is online.
	st := newStore()
	late := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st })
	gw2 := dialGateway(t, late, "dora", true)
	if got := gw2.lsol(""); got["alice"] != 1 || got["bob"] != 1 || got["dora"] != 1 {
		t.Errorf("lsol on a later instance = %v", got)
	}
	gw.expectPresence(gateway.EventOnline, "dora", 1)
	bob.Close()
	gw.expectPresence(gateway.EventOffline, "bob", 0)
	gw2.expectPresence(gateway.EventOffline, "bob", 0)
}

// The http auth plugin resolves the session: the backend gets it as the sid and the password,
// with client id ws-gw; a refusal is a 401 and a failing backend a 503.
func TestGatewayHTTPAuth(t *testing.T) {
	var failing atomic.Bool
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req acl.HTTPAuthRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch {
		case failing.Load():
			w.WriteHeader(http.StatusInternalServerError)
		case req.SID == "sid-of-dora" && req.Password == req.SID && req.Username == "" && req.ClientID == gateway.AuthClientID:
			_ = json.NewEncoder(w).Encode(acl.HTTPAuthReply{User: "dora"})
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer backend.Close()
	a, err := acl.NewHTTPAuth(acl.HTTPOptions{URL: backend.URL, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	b := startAuthBroker(t, a)
	gw := dialGateway(t, b, "sid-of-dora", true)
	if got := gw.lsol(`["dora"]`); got["dora"] != 1 {
		t.Errorf("lsol = %v: dora is not online", got)
	}
	gw = dialGateway(t, b, "sid-of-dora", false)
	gw.expectPresence(gateway.EventOnline, "dora", 2)

	for _, tc := range []struct {
		sid    string
		fail   bool
		status int
	}{
		{"sid-of-nobody", false, http.StatusUnauthorized},
		{"sid-of-dora", true, http.StatusServiceUnavailable},
	} {
		failing.Store(tc.fail)
		ws, resp, err := dialGatewayRaw(b, tc.sid, true, nil)
		if err == nil {
			_ = ws.Close()
			t.Fatalf("%s: upgraded", tc.sid)
		}
		if resp == nil || resp.StatusCode != tc.status {
			t.Errorf("%s (backend failing: %v): %v, want HTTP %d", tc.sid, tc.fail, err, tc.status)
		}
	}
}

// Shutting an instance down closes its gateway connections (1001) and ends their presence.
func TestGatewayShutdown(t *testing.T) {
	st := store.NewMemory()
	bs := startInstances(t, 1, st)
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: tcpURL(bs[0])})
	watcher.MustSubscribe("presence/+")
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st })
	gw := dialGateway(t, b, "alice", true)
	expectPresence(t, watcher, "alice", true, 1)
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	expectPresence(t, watcher, "alice", false, 0)
	_ = gw.ws.SetReadDeadline(time.Now().Add(mqtttest.Timeout))
	for {
		if _, _, err := gw.ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
				t.Errorf("after shutdown: %v, want close 1001", err)
			}
			break
		}
	}
}

// With jwt auth the session is the token.
func TestGatewayJWTAuth(t *testing.T) {
	a, err := acl.NewJWTAuth(acl.JWTOptions{Algorithms: []string{acl.AlgHS256}, Secret: []byte(jwtSecret)})
	if err != nil {
		t.Fatal(err)
	}
	b := startAuthBroker(t, a)
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "erin", "exp": time.Now().Add(time.Minute).Unix(),
	}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	gw := dialGateway(t, b, token, true)
	gw.expectPresence(gateway.EventOnline, "erin", 1)
	ws, resp, err := dialGatewayRaw(b, token+"x", false, nil)
	if err == nil {
		_ = ws.Close()
		t.Fatal("a bad token was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token: %v, want HTTP 401", err)
	}
}
