package client_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/client"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/netproxy"
)

// A joined client receives typed messages; refused messages come back as typed errors.
func TestJoinSendReceive(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.MaxRoomMessageSize = 256 })
	alice := connect(t, wsURL(b), "alice", nil)
	bob := connect(t, tcpURL(b), "bob", nil)
	ctx := testCtx(t)

	msgs := newInbox[client.Message]()
	if err := alice.Join(ctx, "general", msgs.put, nil); err != nil {
		t.Fatal(err)
	}
	if err := bob.SendText(ctx, "general", "hello"); err != nil {
		t.Fatal(err)
	}
	m := msgs.next(t, "room message")
	if m.Room != "general" || m.ID != 1 || m.Author != "bob" || m.Text() != "hello" || m.Timestamp.IsZero() || m.Epoch == "" {
		t.Fatalf("message = %+v (text %q)", m, m.Text())
	}
	var obj map[string]any
	if err := m.Decode(&obj); err != nil || obj["textMessage"] != "hello" || obj["author"] != "bob" {
		t.Fatalf("decoded %v, %v", obj, err)
	}
	if since, epoch, ok := alice.Position("general"); !ok || since != 1 || epoch != m.Epoch {
		t.Fatalf("position = %d %q %v", since, epoch, ok)
	}

	refusals := []struct {
		name    string
		room    string
		payload []byte
		want    error
		code    byte
	}{
		{"not a text message", "general", []byte(`not json`), client.ErrBadMessage, 0x99},
		{"too large", "general", client.TextMessage(strings.Repeat("x", 300)), client.ErrTooLarge, 0x95},
		{"no such room", "nosuchroom", client.TextMessage("x"), client.ErrNotAllowed, 0x87},
	}
	for _, r := range refusals {
		err := bob.Send(ctx, r.room, r.payload)
		var pe *client.PublishError
		if !errors.Is(err, r.want) || !errors.Is(err, client.ErrRefused) || !errors.As(err, &pe) || pe.ReasonCode != r.code {
			t.Errorf("%s: Send = %v, want %v (0x%02x)", r.name, err, r.want, r.code)
		}
	}
	// Nothing refused was delivered: the next message is 2.
	if err := bob.SendText(ctx, "general", "second"); err != nil {
		t.Fatal(err)
	}
	if m := msgs.next(t, "second message"); m.ID != 2 || m.Text() != "second" {
		t.Fatalf("second message = %d %q", m.ID, m.Text())
	}

	// Joining a room the user may not join is a typed refusal.
	if err := alice.Join(ctx, "nosuchroom", msgs.put, nil); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("join nosuchroom: %v", err)
	}
	if err := alice.Join(ctx, "bad/name", msgs.put, nil); !errors.Is(err, client.ErrInvalidName) {
		t.Fatalf("join bad/name: %v", err)
	}
}

// Over the publish rate, Send returns ErrRateLimited.
func TestSendRateLimited(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.PublishRate, o.PublishBurst = 1, 1 })
	bob := connect(t, tcpURL(b), "bob", nil)
	ctx := testCtx(t)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		err = bob.SendText(ctx, "general", "spam")
	}
	if !errors.Is(err, client.ErrRateLimited) {
		t.Fatalf("Send over the rate = %v, want ErrRateLimited", err)
	}
}

// recorder records the ids of the messages of a room, in delivery order.
type recorder struct {
	mu  sync.Mutex
	ids []uint64
	bad []string
	got *inbox[client.Message]
}

func newRecorder() *recorder { return &recorder{got: newInbox[client.Message]()} }

func (r *recorder) put(m client.Message) {
	r.mu.Lock()
	r.ids = append(r.ids, m.ID)
	if want := fmt.Sprintf("m%d", m.ID); m.Text() != want {
		r.bad = append(r.bad, fmt.Sprintf("message %d has text %q", m.ID, m.Text()))
	}
	r.mu.Unlock()
	r.got.put(m)
}

// check waits until n messages were delivered and fails unless they are 1…n in order.
func (r *recorder) check(t *testing.T, n int) {
	t.Helper()
	mqtttest.WaitFor(t, timeout, fmt.Sprintf("%d messages", n), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.ids) >= n
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, id := range r.ids {
		if id != uint64(i+1) {
			t.Fatalf("delivery %d is message %d, want %d (a gap or a duplicate); ids %v", i, id, i+1, r.ids)
		}
	}
	if len(r.ids) != n {
		t.Fatalf("%d messages delivered, want %d", len(r.ids), n)
	}
	if len(r.bad) > 0 {
		t.Fatal(r.bad)
	}
	for len(r.got.ch) > 0 { // later waits are for later messages
		<-r.got.ch
	}
}

// A client that loses its connection resumes every joined room after the last message it
// delivered: messages posted while it was away arrive, none twice.
func TestResumeAcrossReconnect(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	px := netproxy.New(t, b.MQTTAddr())
	ups, downs := newInbox[struct{}](), newInbox[struct{}]()
	reader := connect(t, px.URL(), "reader", func(c *client.Config) {
		c.OnConnect = func() { ups.put(struct{}{}) }
		c.OnConnectionLost = func() { downs.put(struct{}{}) }
	})
	ups.next(t, "first connect")
	pub := connect(t, tcpURL(b), "pub", nil)
	ctx := testCtx(t)

	rec := newRecorder()
	if err := reader.Join(ctx, "general", rec.put, nil); err != nil {
		t.Fatal(err)
	}
	var next uint64 = 1
	send := func(n int) error {
		for i := 0; i < n; i++ {
			if err := pub.SendText(ctx, "general", fmt.Sprintf("m%d", next)); err != nil {
				return err
			}
			next++
		}
		return nil
	}

	// 1. Cut while idle; messages posted during the outage arrive after the reconnect.
	if err := send(10); err != nil {
		t.Fatal(err)
	}
	rec.check(t, 10)
	px.Pause()
	downs.next(t, "connection lost")
	if err := send(20); err != nil {
		t.Fatal(err)
	}
	px.Resume()
	ups.next(t, "reconnect")
	rec.check(t, 30)

	// 2. Cut while messages are flowing, again and again: no gap, no duplicate.
	errs := make(chan error, 1)
	go func() { errs <- send(300) }()
	for i := 0; i < 3; i++ {
		rec.got.next(t, "a message before the cut")
		px.Cut()
		downs.next(t, "connection lost")
		ups.next(t, "reconnect")
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	rec.check(t, 330)
	if err := send(1); err != nil {
		t.Fatal(err)
	}
	rec.check(t, 331)
	if since, epoch, ok := reader.Position("general"); !ok || since != 331 || epoch == "" {
		t.Fatalf("position = %d %q %v", since, epoch, ok)
	}
}

// The broker ends a connection (the disconnect command from another connection of the same
// user); the client reconnects and resumes the room.
func TestKickedClientResumes(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	ups, downs := newInbox[struct{}](), newInbox[struct{}]()
	reader := connect(t, tcpURL(b), "reader", func(c *client.Config) {
		c.ClientID = "reader-phone"
		c.OnConnect = func() { ups.put(struct{}{}) }
		c.OnConnectionLost = func() { downs.put(struct{}{}) }
	})
	ups.next(t, "first connect")
	admin := connect(t, tcpURL(b), "reader", func(c *client.Config) { c.ClientID = "reader-laptop" })
	pub := connect(t, tcpURL(b), "pub", nil)
	ctx := testCtx(t)
	rec := newRecorder()
	if err := reader.Join(ctx, "general", rec.put, nil); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if err := pub.SendText(ctx, "general", fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	rec.check(t, 5)
	if err := admin.Disconnect(ctx, "reader-phone"); err != nil {
		t.Fatal(err)
	}
	for i := 6; i <= 10; i++ {
		if err := pub.SendText(ctx, "general", fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	downs.next(t, "connection lost")
	ups.next(t, "reconnect")
	rec.check(t, 10)
	if err := admin.Disconnect(ctx, "nobody"); !errors.Is(err, client.ErrBadArgument) {
		t.Fatalf("disconnect of another user's connection: %v", err)
	}
}

// Join with a saved position replays what came after it; a position that left the history
// ring gives historyGap, a stale epoch historyReset and a replay from the oldest message.
func TestJoinFromPosition(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.HistoryMaxSize = 5 })
	pub := connect(t, tcpURL(b), "pub", nil)
	ctx := testCtx(t)
	for i := 1; i <= 8; i++ {
		if err := pub.SendText(ctx, "general", fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(msgs *inbox[client.Message], n int) []uint64 {
		var out []uint64
		for i := 0; i < n; i++ {
			out = append(out, msgs.next(t, "replayed message").ID)
		}
		return out
	}

	// A live join starts after the last message.
	dave := connect(t, tcpURL(b), "dave", nil)
	live := newInbox[client.Message]()
	if err := dave.Join(ctx, "general", live.put, nil); err != nil {
		t.Fatal(err)
	}
	if since, _, _ := dave.Position("general"); since != 8 {
		t.Fatalf("live join position = %d, want 8", since)
	}

	alice := connect(t, tcpURL(b), "alice", nil)
	msgs, events := newInbox[client.Message](), newInbox[client.Event]()
	if err := alice.Join(ctx, "general", msgs.put, &client.JoinOptions{Resume: true, Since: 5, OnEvent: events.put}); err != nil {
		t.Fatal(err)
	}
	if got := ids(msgs, 3); !slices.Equal(got, []uint64{6, 7, 8}) {
		t.Fatalf("replay after 5 = %v", got)
	}
	_, epoch, _ := alice.Position("general")

	bob := connect(t, tcpURL(b), "bob", nil)
	msgs, events = newInbox[client.Message](), newInbox[client.Event]()
	if err := bob.Join(ctx, "general", msgs.put, &client.JoinOptions{Resume: true, Since: 1, Epoch: epoch, OnEvent: events.put}); err != nil {
		t.Fatal(err)
	}
	ev := events.next(t, "historyGap")
	if ev.Name != client.EventHistoryGap || ev.Room != "general" || ev.Fields["from"] != float64(2) || ev.Fields["to"] != float64(3) {
		t.Fatalf("event = %+v", ev)
	}
	if got := ids(msgs, 5); !slices.Equal(got, []uint64{4, 5, 6, 7, 8}) {
		t.Fatalf("replay after a gap = %v", got)
	}

	carol := connect(t, tcpURL(b), "carol", nil)
	msgs, events = newInbox[client.Message](), newInbox[client.Event]()
	if err := carol.Join(ctx, "general", msgs.put, &client.JoinOptions{Resume: true, Since: 7, Epoch: "stale", OnEvent: events.put}); err != nil {
		t.Fatal(err)
	}
	if ev := events.next(t, "historyReset"); ev.Name != client.EventHistoryReset || ev.Fields["epoch"] != epoch {
		t.Fatalf("event = %+v", ev)
	}
	if got := ids(msgs, 5); !slices.Equal(got, []uint64{4, 5, 6, 7, 8}) {
		t.Fatalf("replay after a reset = %v", got)
	}
	if _, e, _ := carol.Position("general"); e != epoch {
		t.Fatalf("epoch after the reset = %q, want %q", e, epoch)
	}
	if err := pub.SendText(ctx, "general", "m9"); err != nil {
		t.Fatal(err)
	}
	if m := live.next(t, "message 9"); m.ID != 9 {
		t.Fatalf("live join got message %d first, want 9", m.ID)
	}
}

// Room events reach the room's OnEvent when Events is set.
func TestRoomEvents(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice := connect(t, tcpURL(b), "alice", nil)
	bob := connect(t, tcpURL(b), "bob", nil)
	ctx := testCtx(t)
	events := newInbox[client.Event]()
	if err := alice.Join(ctx, "general", func(client.Message) {}, &client.JoinOptions{Events: true, OnEvent: events.put}); err != nil {
		t.Fatal(err)
	}
	if err := bob.Join(ctx, "general", func(client.Message) {}, nil); err != nil {
		t.Fatal(err)
	}
	events.until(t, "userJoined bob", func(ev client.Event) bool {
		return ev.Name == client.EventUserJoined && ev.Fields["user"] == "bob"
	})
	if err := bob.Leave(ctx, "general"); err != nil {
		t.Fatal(err)
	}
	events.until(t, "userLeft bob", func(ev client.Event) bool {
		return ev.Name == client.EventUserLeft && ev.Fields["user"] == "bob"
	})
}

// A live join while messages are flowing delivers every message after its position, in
// order, none twice.
func TestLiveJoinWhileFlowing(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	pub := connect(t, tcpURL(b), "pub", nil)
	reader := connect(t, wsURL(b), "reader", nil)
	ctx := testCtx(t)
	const total = 300
	errs := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		for i := 1; i <= total; i++ {
			if i == 20 {
				close(started)
			}
			if err := pub.SendText(ctx, "general", fmt.Sprintf("m%d", i)); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	<-started
	msgs := newInbox[client.Message]()
	if err := reader.Join(ctx, "general", msgs.put, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	first := msgs.next(t, "a message")
	for want := first.ID + 1; want <= total; want++ {
		if m := msgs.next(t, fmt.Sprintf("message %d", want)); m.ID != want {
			t.Fatalf("got message %d, want %d", m.ID, want)
		}
	}
	if since, _, _ := reader.Position("general"); since != total {
		t.Fatalf("position = %d, want %d", since, total)
	}
}

// A user who loses access to a room is told through OnEvent and leaves it.
func TestRoomAccessRemoved(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice := connect(t, tcpURL(b), "alice", nil)
	userEvents := newInbox[client.Event]()
	bob := connect(t, tcpURL(b), "bob", func(c *client.Config) { c.OnEvent = userEvents.put })
	ctx := testCtx(t)
	if err := alice.RoomCreate(ctx, "den", nil); err != nil {
		t.Fatal(err)
	}
	events := newInbox[client.Event]()
	if err := bob.Join(ctx, "den", func(client.Message) {}, &client.JoinOptions{OnEvent: events.put}); err != nil {
		t.Fatal(err)
	}
	if err := alice.RoomAddToList(ctx, "den", client.ListBlacklist, "bob"); err != nil {
		t.Fatal(err)
	}
	if ev := events.next(t, "roomAccessRemoved"); ev.Name != client.EventRoomAccessRemoved || ev.Room != "den" {
		t.Fatalf("event = %+v", ev)
	}
	userEvents.until(t, "roomAccessRemoved on the user's events", func(ev client.Event) bool {
		return ev.Name == client.EventRoomAccessRemoved && ev.Room == "den"
	})
	if _, _, ok := bob.Position("den"); ok {
		t.Fatal("bob is still joined to den")
	}
	if err := bob.Join(ctx, "den", func(client.Message) {}, nil); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("join after the blacklisting: %v", err)
	}
}
