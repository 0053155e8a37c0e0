package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/devices"
	"github.com/roomq/roomq/gateway"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

const timeout = 5 * time.Second

// sessions records what the gateway reports.
type sessions struct {
	mu    sync.Mutex
	open  map[string]*devices.Session
	ended int
}

func (s *sessions) Connected(_ context.Context, sess *devices.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		s.open = make(map[string]*devices.Session)
	}
	s.open[sess.ClientID] = sess
	return nil
}

func (s *sessions) Disconnected(_ context.Context, sess *devices.Session, _ bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, sess.ClientID)
	s.ended++
}

func (s *sessions) UserConnections(_ context.Context, user string) ([]store.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Connection
	for _, sess := range s.open {
		if sess.Identity.User == user {
			out = append(out, store.Connection{ClientID: sess.ClientID, User: user})
		}
	}
	return out, nil
}

func (s *sessions) counts() (open, ended int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open), s.ended
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type fixture struct {
	gw     *gateway.Gateway
	topics *mqtt.TopicsIndex
	sess   *sessions
	srv    *httptest.Server
}

func start(t *testing.T, mutate func(*gateway.Options)) *fixture {
	t.Helper()
	f := &fixture{topics: mqtt.NewTopicsIndex(), sess: &sessions{}}
	opts := gateway.Options{Authenticator: acl.DevAuth{}, Sessions: f.sess, Topics: f.topics}
	if mutate != nil {
		mutate(&opts)
	}
	gw, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.gw = gw
	f.srv = httptest.NewServer(gw)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := gw.Close(ctx); err != nil {
			t.Error(err)
		}
		f.srv.Close()
	})
	return f
}

// dial connects as user and reads the connected frame.
func (f *fixture) dial(t *testing.T, user string) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/?_sid=" + user
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(timeout))
	if _, b, err := ws.ReadMessage(); err != nil || string(b) != `{"event":"connected"}` {
		t.Fatalf("first frame %s, %v", b, err)
	}
	return ws
}

// publish delivers payload on topic to the inline subscriptions, as the router does.
func (f *fixture) publish(topic string, payload []byte) {
	pk := packets.Packet{TopicName: topic, Payload: payload}
	for _, in := range f.topics.Subscribers(topic).InlineSubscriptions {
		in.Handler(nil, in.Subscription, pk)
	}
}

// readUntilClosed reads until the connection fails and returns the error.
func readUntilClosed(ws *websocket.Conn) error {
	_ = ws.SetReadDeadline(time.Now().Add(timeout))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			return err
		}
	}
}

func TestNewValidates(t *testing.T) {
	topics := mqtt.NewTopicsIndex()
	good := gateway.Options{Authenticator: acl.DevAuth{}, Sessions: &sessions{}, Topics: topics}
	for name, mutate := range map[string]func(*gateway.Options){
		"no authenticator":   func(o *gateway.Options) { o.Authenticator = nil },
		"no sessions":        func(o *gateway.Options) { o.Sessions = nil },
		"no topics":          func(o *gateway.Options) { o.Topics = nil },
		"unknown event":      func(o *gateway.Options) { o.DefaultEvents = []string{"chat"} },
		"negative queue":     func(o *gateway.Options) { o.SendQueue = -1 },
		"bad allowed origin": func(o *gateway.Options) { o.AllowedOrigins = []string{"example.com/path"} },
	} {
		opts := good
		mutate(&opts)
		if _, err := gateway.New(opts); !errors.Is(err, gateway.ErrBadOptions) {
			t.Errorf("%s: %v, want ErrBadOptions", name, err)
		}
	}
	gw, err := gateway.New(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gateway.New(good); !errors.Is(err, gateway.ErrSubscribed) {
		t.Errorf("a second gateway on the same topics: %v, want ErrSubscribed", err)
	}
	if err := gw.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	gw, err = gateway.New(good) // the first one let go
	if err != nil {
		t.Fatal(err)
	}
	_ = gw.Close(context.Background())
}

// A client that does not read is closed once its queue is full, and its connection ends.
func TestSlowClientClosed(t *testing.T) {
	f := start(t, func(o *gateway.Options) { o.SendQueue = 4; o.DefaultEvents = []string{gateway.EventMsg} })
	ws := f.dial(t, "alice")
	waitFor(t, "the connection recorded", func() bool { open, _ := f.sess.counts(); return open == 1 })
	payload := []byte(`{"textMessage":"` + strings.Repeat("x", 64<<10) + `"}`)
	for i := 0; i < 2000; i++ { // 128 MiB: far more than the socket buffers hold
		f.publish(wire.UserInboxTopic("alice"), payload)
		if _, ended := f.sess.counts(); ended == 1 {
			break
		}
	}
	waitFor(t, "the slow client closed", func() bool { _, ended := f.sess.counts(); return ended == 1 })
	if err := readUntilClosed(ws); err == nil {
		t.Fatal("still open")
	}
}

// A client that answers no ping is closed after PingInterval + PongTimeout; one that answers
// stays.
func TestKeepalive(t *testing.T) {
	f := start(t, func(o *gateway.Options) {
		o.PingInterval = 20 * time.Millisecond
		o.PongTimeout = 30 * time.Millisecond
	})
	f.dial(t, "silent") // never reads, so never answers a ping
	live := f.dial(t, "live")
	frames := make(chan []byte, 16)
	go func() { // ends when the test closes live
		defer close(frames)
		_ = live.SetReadDeadline(time.Time{})
		for {
			_, b, err := live.ReadMessage() // answers pings
			if err != nil {
				return
			}
			frames <- b
		}
	}()
	waitFor(t, "the silent client closed", func() bool { open, ended := f.sess.counts(); return open == 1 && ended == 1 })
	time.Sleep(200 * time.Millisecond) // several ping intervals
	if err := live.WriteMessage(websocket.TextMessage, []byte(`{"action":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	for b := range frames {
		if string(b) == `{"event":"ping","data":"pong"}` {
			return
		}
	}
	t.Fatal("the live client was closed")
}

// Close ends every connection with 1001 and records it before returning; later requests get
// 503.
func TestClose(t *testing.T) {
	f := start(t, nil)
	ws := f.dial(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := f.gw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if open, ended := f.sess.counts(); open != 0 || ended != 1 {
		t.Errorf("after Close: %d open, %d ended", open, ended)
	}
	if err := readUntilClosed(ws); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("read after Close: %v, want 1001", err)
	}
	resp, err := http.Get(f.srv.URL + "/?_sid=bob")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: HTTP %d, want 503", resp.StatusCode)
	}
}

// MaxConnectionsPerUser counts the user's connections; admins are not limited.
func TestMaxConnectionsPerUser(t *testing.T) {
	f := start(t, func(o *gateway.Options) {
		o.MaxConnectionsPerUser = 1
		o.Authenticator = acl.DevAuth{Admins: []string{"root"}}
	})
	f.dial(t, "alice")
	waitFor(t, "the connection recorded", func() bool { open, _ := f.sess.counts(); return open == 1 })
	u := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/?_sid=alice"
	if _, resp, err := websocket.DefaultDialer.Dial(u, nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("second connection: %v, want HTTP 429", err)
	}
	f.dial(t, "root")
	waitFor(t, "root recorded", func() bool { open, _ := f.sess.counts(); return open == 2 })
	f.dial(t, "root")
}
