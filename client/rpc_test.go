package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/roomq/roomq/client"
	"github.com/roomq/roomq/internal/mqtttest"
)

// Broker commands return typed results and typed errors.
func TestRPCCommands(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice := connect(t, tcpURL(b), "alice", nil)
	bob := connect(t, wsURL(b), "bob", nil)
	ctx := testCtx(t)

	err := alice.RoomCreate(ctx, "general", nil)
	var e *client.Error
	if !errors.Is(err, client.ErrRoomExists) || !errors.As(err, &e) || e.Code != client.CodeRoomExists || e.Message == "" {
		t.Fatalf("RoomCreate(general) = %v, want roomExists", err)
	}
	if errors.Is(err, client.ErrNoRoom) {
		t.Fatal("roomExists matches ErrNoRoom")
	}
	if err := alice.RoomCreate(ctx, "den", &client.RoomOptions{Checker: "json"}); err != nil {
		t.Fatal(err)
	}
	if owner, err := alice.RoomGetOwner(ctx, "den"); err != nil || owner != "alice" {
		t.Fatalf("RoomGetOwner = %q, %v", owner, err)
	}
	if err := bob.RoomDelete(ctx, "den"); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("bob deletes alice's room: %v", err)
	}
	if _, err := bob.RoomHistoryInfo(ctx, "den"); !errors.Is(err, client.ErrNotJoined) {
		t.Fatalf("bob reads a room he has not joined: %v", err)
	}
	if err := alice.RPC(ctx, "noSuchCommand", nil, nil); !errors.Is(err, client.ErrNoCommand) {
		t.Fatalf("unknown command: %v", err)
	}

	// Messages through roomMessage, then the history.
	for i := 1; i <= 3; i++ {
		id, err := alice.RoomMessage(ctx, "den", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil || id != uint64(i) {
			t.Fatalf("RoomMessage = %d, %v", id, err)
		}
	}
	if _, err := alice.RoomMessage(ctx, "den", json.RawMessage(`{"id":1}`)); !errors.Is(err, client.ErrBadMessage) {
		t.Fatalf("RoomMessage with a reserved key: %v", err)
	}
	info, err := alice.RoomHistoryInfo(ctx, "den")
	if err != nil || info.LastMessageID != 3 || info.HistorySize != 3 || info.Epoch == "" || info.HistoryMaxGetMessages == 0 {
		t.Fatalf("RoomHistoryInfo = %+v, %v", info, err)
	}
	hist, err := alice.RoomHistoryGet(ctx, "den", 1, 10)
	if err != nil || len(hist) != 2 || hist[0].ID != 2 || hist[1].ID != 3 || hist[0].Author != "alice" || hist[0].Timestamp.IsZero() {
		t.Fatalf("RoomHistoryGet = %+v, %v", hist, err)
	}
	var n struct{ N int }
	if err := hist[1].Decode(&n); err != nil || n.N != 3 {
		t.Fatalf("history message 3 decodes to %+v, %v", n, err)
	}
	if recent, err := alice.RoomRecentHistory(ctx, "den"); err != nil || len(recent) != 3 {
		t.Fatalf("RoomRecentHistory = %d messages, %v", len(recent), err)
	}

	// Lists and modes.
	if err := alice.RoomAddToList(ctx, "den", client.ListBlacklist, "mallory", "eve"); err != nil {
		t.Fatal(err)
	}
	if users, err := alice.RoomGetAccessList(ctx, "den", client.ListBlacklist); err != nil || !slices.Contains(users, "eve") || len(users) != 2 {
		t.Fatalf("blacklist = %v, %v", users, err)
	}
	if err := alice.RoomRemoveFromList(ctx, "den", client.ListBlacklist, "eve"); err != nil {
		t.Fatal(err)
	}
	if err := alice.RoomAddToList(ctx, "den", "nolist", "eve"); !errors.Is(err, client.ErrNoList) {
		t.Fatalf("add to nolist: %v", err)
	}
	if err := alice.RoomSetWhitelistMode(ctx, "den", true); err != nil {
		t.Fatal(err)
	}
	if on, err := alice.RoomGetWhitelistMode(ctx, "den"); err != nil || !on {
		t.Fatalf("whitelist mode = %v, %v", on, err)
	}
	if ni, err := alice.RoomNotificationsInfo(ctx, "den"); err != nil || !ni.EnableUserlistUpdates {
		t.Fatalf("notifications = %+v, %v", ni, err)
	}
	if seen, err := alice.RoomUserSeen(ctx, "den", "bob"); err != nil || seen.Joined {
		t.Fatalf("RoomUserSeen = %+v, %v", seen, err)
	}

	if err := bob.DirectAddToList(ctx, client.ListWhitelist, "alice"); err != nil {
		t.Fatal(err)
	}
	if users, err := bob.DirectGetAccessList(ctx, client.ListWhitelist); err != nil || !slices.Equal(users, []string{"alice"}) {
		t.Fatalf("direct whitelist = %v, %v", users, err)
	}
	if err := bob.DirectRemoveFromList(ctx, client.ListWhitelist, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := bob.DirectSetWhitelistMode(ctx, true); err != nil {
		t.Fatal(err)
	}
	if on, err := bob.DirectGetWhitelistMode(ctx); err != nil || !on {
		t.Fatalf("direct whitelist mode = %v, %v", on, err)
	}

	// Server-side join and the sockets list.
	if n, err := alice.RoomJoin(ctx, "general"); err != nil || n != 1 {
		t.Fatalf("RoomJoin = %d, %v", n, err)
	}
	socks, err := alice.ListOwnSockets(ctx)
	if err != nil || !slices.Equal(socks[alice.ClientID()], []string{"general"}) {
		t.Fatalf("ListOwnSockets = %v, %v", socks, err)
	}
	if n, err := alice.RoomLeave(ctx, "general"); err != nil || n != 0 {
		t.Fatalf("RoomLeave = %d, %v", n, err)
	}
	if err := alice.RoomDelete(ctx, "den"); err != nil {
		t.Fatal(err)
	}
}

// systemMessage reaches the caller's other connections as an event.
func TestSystemMessage(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	events := newInbox[client.Event]()
	phone := connect(t, tcpURL(b), "carol", func(c *client.Config) { c.OnEvent = events.put })
	laptop := connect(t, tcpURL(b), "carol", nil)
	ctx := testCtx(t)
	if err := laptop.SystemMessage(ctx, map[string]string{"hello": "phone"}); err != nil {
		t.Fatal(err)
	}
	ev := events.until(t, "systemMessage", func(ev client.Event) bool { return ev.Name == client.EventSystemMessage })
	if data, _ := ev.Fields["data"].(map[string]any); data["hello"] != "phone" {
		t.Fatalf("systemMessage = %v", ev.Fields)
	}
	_ = phone
}

// Presence watches deliver the retained state and each change.
func TestPresence(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice := connect(t, tcpURL(b), "alice", nil)
	ctx := testCtx(t)
	seen := newInbox[client.Presence]()
	if err := alice.WatchPresence(ctx, "bob", seen.put); err != nil {
		t.Fatal(err)
	}
	bob := connect(t, tcpURL(b), "bob", nil)
	p := seen.until(t, "bob online", func(p client.Presence) bool { return p.Online })
	if p.User != "bob" || p.Connections != 1 || p.Timestamp.IsZero() {
		t.Fatalf("presence = %+v", p)
	}
	if err := bob.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if p := seen.until(t, "bob offline", func(p client.Presence) bool { return !p.Online }); p.User != "bob" || p.Connections != 0 {
		t.Fatalf("presence = %+v", p)
	}
	if err := alice.UnwatchPresence(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	// A watch of every user sees the retained state of each online one.
	all := newInbox[client.Presence]()
	if err := alice.WatchPresence(ctx, "+", all.put); err != nil {
		t.Fatal(err)
	}
	all.until(t, "alice online", func(p client.Presence) bool { return p.User == "alice" && p.Online })
}

// Direct messages go through directMessage and arrive in the recipient's inbox.
func TestDirectMessage(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	inbox := newInbox[client.DirectMessage]()
	bob := connect(t, tcpURL(b), "bob", func(c *client.Config) { c.OnDirectMessage = inbox.put })
	alice := connect(t, wsURL(b), "alice", nil)
	ctx := testCtx(t)
	ts, err := alice.SendDirect(ctx, "bob", "psst")
	if err != nil || ts.IsZero() {
		t.Fatalf("SendDirect = %v, %v", ts, err)
	}
	dm := inbox.next(t, "direct message")
	if dm.Author != "alice" || dm.Text != "psst" || !dm.Timestamp.Equal(ts) {
		t.Fatalf("direct message = %+v, sent at %v", dm, ts)
	}
	if _, err := alice.SendDirect(ctx, "nobody", "hi"); !errors.Is(err, client.ErrNoUserOnline) {
		t.Fatalf("SendDirect to an offline user: %v", err)
	}
	if _, err := alice.SendDirect(ctx, "alice", "hi"); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("SendDirect to oneself: %v", err)
	}
	_ = bob
}

// A device answers requests with Handle; callers get their own reply on their
// users/{user}/replies/…, errors come back typed.
func TestDeviceCall(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	device := connect(t, tcpURL(b), "lamp", nil)
	caller := connect(t, wsURL(b), "alice", nil)
	testDeviceCall(t, device, caller)
}

// Config.CallResponseTopic answers on a plain topic instead.
func TestDeviceCallPlainResponseTopic(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	device := connect(t, tcpURL(b), "lamp", nil)
	caller := connect(t, wsURL(b), "alice", func(c *client.Config) { c.CallResponseTopic = "replies/alice-caller" })
	testDeviceCall(t, device, caller)
}

func testDeviceCall(t *testing.T, device, caller *client.Client) {
	ctx := testCtx(t)
	err := device.Handle(ctx, "devices/lamp/rpc/+", func(_ context.Context, req client.Request) ([]byte, error) {
		switch strings.TrimPrefix(req.Topic, "devices/lamp/rpc/") {
		case "echo":
			return append([]byte("echo:"), req.Payload...), nil
		case "fail":
			return nil, &client.Error{Code: client.CodeBadArgument, Message: "no such level"}
		}
		return nil, errors.New("unknown method")
	})
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("call %d", i)
			got, err := caller.Call(ctx, "devices/lamp/rpc/echo", []byte(want))
			if err != nil || string(got) != "echo:"+want {
				errs <- fmt.Errorf("call %d: %q, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	_, err = caller.Call(ctx, "devices/lamp/rpc/fail", nil)
	var e *client.Error
	if !errors.Is(err, client.ErrBadArgument) || !errors.As(err, &e) || !strings.Contains(e.Message, "no such level") {
		t.Fatalf("failing call: %v", err)
	}
	if _, err := caller.Call(ctx, "devices/lamp/rpc/other", nil); !errors.Is(err, client.ErrInternalError) {
		t.Fatalf("call of an unknown method: %v", err)
	}
	if err := device.Unhandle(ctx, "devices/lamp/rpc/+"); err != nil {
		t.Fatal(err)
	}
}

// After Close, calls fail with ErrClosed.
func TestClose(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	c := connect(t, tcpURL(b), "alice", nil)
	ctx := testCtx(t)
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.SendText(ctx, "general", "x"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if _, err := c.RoomGetOwner(ctx, "general"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("RPC after Close: %v", err)
	}
}

// Every command the broker registers has a typed method of the same name.
func TestEveryCommandHasAMethod(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	typ := reflect.TypeOf((*client.Client)(nil))
	for _, name := range b.Commands().Names() {
		method := strings.ToUpper(name[:1]) + name[1:]
		if _, ok := typ.MethodByName(method); !ok {
			t.Errorf("command %s has no method Client.%s", name, method)
		}
	}
}
