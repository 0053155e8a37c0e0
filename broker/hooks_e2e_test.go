package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/wire"
)

// textOf returns the textMessage of a delivered text room message.
func textOf(t *testing.T, p *paho.Publish) string {
	t.Helper()
	var m struct {
		TextMessage string `json:"textMessage"`
	}
	if err := json.Unmarshal(p.Payload, &m); err != nil {
		t.Fatalf("message %s: %v", p.Payload, err)
	}
	return m.TextMessage
}

// Before hooks change the arguments of RPC and native room messages alike, in registration
// order, and may end the call with an error or a result; After hooks see the outcome, also
// of failed calls, and may add to the result.
func TestCommandHooks(t *testing.T) {
	h := commands.NewHooks()
	var order []string
	h.Before(commands.AllCommands, func(_ context.Context, call *commands.Call) (any, error) {
		if call.Command == commands.CommandRoomMessage {
			order = append(order, "all")
		}
		return nil, nil
	})
	h.Before(commands.CommandRoomMessage, func(_ context.Context, call *commands.Call) (any, error) {
		order = append(order, "first")
		var a struct {
			Room    string `json:"room"`
			Message struct {
				TextMessage string `json:"textMessage"`
			} `json:"message"`
		}
		if err := call.Decode(&a); err != nil {
			return nil, err
		}
		switch a.Message.TextMessage {
		case "forbidden":
			return nil, wire.NewError(wire.CodeNotAllowed, "no such word")
		case "skip":
			return map[string]any{"skipped": true}, nil
		case "panic":
			panic("hook bug")
		case "fail":
			return nil, errors.New("database down")
		}
		a.Message.TextMessage = strings.ToUpper(a.Message.TextMessage)
		return nil, call.SetArgs(a)
	})
	h.Before(commands.CommandRoomMessage, func(_ context.Context, call *commands.Call) (any, error) {
		order = append(order, "second")
		return nil, nil
	})
	afterSaw := make(chan error, 10)
	h.After(commands.CommandRoomMessage, func(_ context.Context, call *commands.Call, out *commands.Outcome) error {
		afterSaw <- out.Err
		if out.Err == nil && !out.Skipped {
			if out.Message == nil {
				return errors.New("no message on a successful roomMessage")
			}
			return out.Merge(map[string]any{"native": call.Native, "author": out.Message.Author})
		}
		return nil
	})
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Hooks = h })
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	alice.MustSubscribe("rooms/general")

	var res map[string]any
	alice.MustRPC("roomMessage", map[string]any{"room": "general", "message": map[string]string{"textMessage": "hi"}}, &res)
	if res["id"] != 1.0 || res["native"] != false || res["author"] != "alice" {
		t.Errorf("roomMessage result = %v, want id 1, native false, author alice", res)
	}
	if got := textOf(t, alice.Expect("rooms/general")); got != "HI" {
		t.Errorf("RPC message delivered as %q, want HI", got)
	}
	if err := <-afterSaw; err != nil {
		t.Errorf("After hook saw %v", err)
	}
	if strings.Join(order, ",") != "all,first,second" {
		t.Errorf("Before hooks ran as %v, want all, first, second", order)
	}

	// The native path goes through the same hooks.
	if code := alice.Publish("rooms/general", 1, []byte(`{"textMessage":"native"}`), nil); code != 0 {
		t.Fatalf("native publish: 0x%02x", code)
	}
	if got := textOf(t, alice.Expect("rooms/general")); got != "NATIVE" {
		t.Errorf("native message delivered as %q, want NATIVE", got)
	}
	<-afterSaw

	// An error ends the sequence: RPC gets the code, native PUBLISH the reason code.
	if code := alice.RPCErrorCode("roomMessage", map[string]any{"room": "general", "message": map[string]string{"textMessage": "forbidden"}}); code != wire.CodeNotAllowed {
		t.Errorf("refused by a hook: %s, want notAllowed", code)
	}
	if err := <-afterSaw; wire.CodeOf(err) != wire.CodeNotAllowed {
		t.Errorf("After hook saw %v, want notAllowed", err)
	}
	if code := alice.Publish("rooms/general", 1, []byte(`{"textMessage":"forbidden"}`), nil); code != 0x87 {
		t.Errorf("native publish refused by a hook: 0x%02x, want 0x87", code)
	}
	<-afterSaw

	// A result ends the sequence: the command does not run.
	res = nil
	alice.MustRPC("roomMessage", map[string]any{"room": "general", "message": map[string]string{"textMessage": "skip"}}, &res)
	if res["skipped"] != true || res["id"] != nil {
		t.Errorf("skipped result = %v", res)
	}
	<-afterSaw

	// Panics and plain errors give internalError; the broker keeps running.
	for _, word := range []string{"panic", "fail"} {
		if code := alice.RPCErrorCode("roomMessage", map[string]any{"room": "general", "message": map[string]string{"textMessage": word}}); code != wire.CodeInternalError {
			t.Errorf("%s: %s, want internalError", word, code)
		}
		<-afterSaw
	}

	// After hooks run when the command fails.
	if code := alice.RPCErrorCode("roomMessage", map[string]any{"room": "nowhere", "message": map[string]string{"textMessage": "x"}}); code != wire.CodeNoRoom {
		t.Errorf("missing room: %s, want noRoom", code)
	}
	if err := <-afterSaw; wire.CodeOf(err) != wire.CodeNoRoom {
		t.Errorf("After hook saw %v, want noRoom", err)
	}

	alice.MustRPC("roomMessage", map[string]any{"room": "general", "message": map[string]string{"textMessage": "still here"}}, nil)
	if got := textOf(t, alice.Expect("rooms/general")); got != "STILL HERE" {
		t.Errorf("after the failures: %q", got)
	}
	// Skipped and refused messages were never posted.
	var info struct{ LastMessageID uint64 }
	alice.MustRPC("roomHistoryInfo", map[string]any{"room": "general"}, &info)
	if info.LastMessageID != 3 {
		t.Errorf("last id = %d, want 3", info.LastMessageID)
	}
}

// Connect hooks refuse with a reason code or attach data that later hooks see; join, leave and
// disconnect hooks follow the connection; a Before hook on roomJoin refuses a SUBSCRIBE.
func TestConnectionHooks(t *testing.T) {
	h := commands.NewHooks()
	h.OnConnect(func(_ context.Context, c *commands.Connection) error {
		switch c.Identity.User {
		case "mallory":
			return &commands.ConnectRefusal{ReasonCode: 0x8A, Reason: "banned by a hook"}
		case "buggy":
			panic("connect hook bug")
		}
		c.Set("tenant", "t-"+c.Identity.User)
		return nil
	})
	type event struct{ kind, client, room, tenant string }
	events := make(chan event, 100)
	tenant := func(c *commands.Connection) string {
		v, _ := c.Get("tenant")
		s, _ := v.(string)
		return s
	}
	h.OnJoin(func(_ context.Context, c *commands.Connection, room string) error {
		events <- event{"join", c.ClientID, room, tenant(c)}
		return nil
	})
	h.OnLeave(func(_ context.Context, c *commands.Connection, room string) error {
		events <- event{"leave", c.ClientID, room, tenant(c)}
		return nil
	})
	h.OnDisconnect(func(_ context.Context, c *commands.Connection, _ error) error {
		events <- event{"disconnect", c.ClientID, "", tenant(c)}
		return nil
	})
	h.Before(commands.CommandRoomJoin, func(_ context.Context, call *commands.Call) (any, error) {
		var a struct{ Room string }
		if err := call.Decode(&a); err != nil {
			return nil, err
		}
		if a.Room == "general" && call.Caller.Conn != nil && tenant(call.Caller.Conn) == "t-eve" {
			return nil, wire.NewError(wire.CodeNotAllowed, "eve's tenant may not join general")
		}
		return nil, nil
	})
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Hooks = h })

	for user, want := range map[string]byte{"mallory": 0x8A, "buggy": 0x80} {
		c := mqtttest.Dial(t, user, mqtttest.Options{URL: tcpURL(b), NoFail: true})
		if c.Connack == nil || c.Connack.ReasonCode != want {
			t.Errorf("%s: CONNACK %+v, want 0x%02x", user, c.Connack, want)
		}
	}

	next := func(want event) {
		t.Helper()
		select {
		case got := <-events:
			if got != want {
				t.Errorf("hook event %+v, want %+v", got, want)
			}
		case <-time.After(mqtttest.Timeout):
			t.Fatalf("no hook event, want %+v", want)
		}
	}
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b), ClientID: "alice-1"})
	alice.MustSubscribe("rooms/general")
	next(event{"join", "alice-1", "general", "t-alice"})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if _, err := alice.Paho.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"rooms/general"}}); err != nil {
		t.Fatal(err)
	}
	next(event{"leave", "alice-1", "general", "t-alice"})
	alice.MustRPC("roomJoin", map[string]any{"room": "general"}, nil)
	next(event{"join", "alice-1", "general", "t-alice"})
	alice.Close()
	next(event{"leave", "alice-1", "general", "t-alice"})
	next(event{"disconnect", "alice-1", "", "t-alice"})

	eve := mqtttest.Dial(t, "eve", mqtttest.Options{URL: tcpURL(b)})
	if codes := eve.Subscribe(nil, paho.SubscribeOptions{Topic: "rooms/general", QoS: 1}); codes[0] != 0x87 {
		t.Errorf("SUBACK of a join a hook refused: 0x%02x, want 0x87", codes[0])
	}
	if code := eve.RPCErrorCode("roomJoin", map[string]any{"room": "general"}); code != wire.CodeNotAllowed {
		t.Errorf("roomJoin a hook refused: %s, want notAllowed", code)
	}
	if subs, _ := b.Subscriptions(eve.ID); len(subs) != 1 { // only the replies topic
		t.Errorf("eve's subscriptions: %v", subs)
	}
}

// Native messages reach the hooks in their RPC form — JSON as is, other bytes and binary
// rooms as {"binary": base64} — and are posted unchanged when the hooks change nothing.
func TestNativeMessageHookArgs(t *testing.T) {
	h := commands.NewHooks()
	seen := make(chan string, 10)
	record := func(_ context.Context, call *commands.Call) (any, error) {
		if call.Native {
			seen <- call.Command + " " + string(call.Args)
		}
		var a struct{ Message json.RawMessage }
		if err := call.Decode(&a); err != nil {
			return nil, err
		}
		if string(a.Message) == `{"textMessage":"blocked"}` {
			return nil, wire.NewError(wire.CodeNotAllowed, "blocked")
		}
		return nil, nil
	}
	h.Before(commands.CommandRoomMessage, record)
	h.Before(commands.CommandDirectMessage, record)
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Hooks = h })
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(b)})
	bob.MustSubscribe("users/bob/inbox")
	alice.MustRPC("roomCreate", map[string]any{"room": "bits", "checker": "binary"}, nil)
	alice.MustSubscribe("rooms/bits")

	for _, c := range []struct {
		payload, args string
	}{
		{"\x00\x01raw", `{"room":"bits","message":{"binary":"AAFyYXc="}}`},
		{`{"json":true}`, `{"room":"bits","message":{"binary":"eyJqc29uIjp0cnVlfQ=="}}`},
	} {
		if code := alice.Publish("rooms/bits", 1, []byte(c.payload), nil); code != 0 {
			t.Fatalf("publish %q: 0x%02x", c.payload, code)
		}
		if got := <-seen; got != "roomMessage "+c.args {
			t.Errorf("hook saw %s, want roomMessage %s", got, c.args)
		}
		if p := alice.Expect("rooms/bits"); string(p.Payload) != c.payload {
			t.Errorf("delivered %q, want %q", p.Payload, c.payload)
		}
	}
	// Not JSON in a text room: refused as without hooks.
	if code := alice.Publish("rooms/general", 1, []byte("plain"), nil); code != 0x99 {
		t.Errorf("plain text to a text room: 0x%02x, want 0x99", code)
	}
	<-seen

	// Direct messages.
	if code := alice.Publish("users/bob/inbox", 1, []byte(`{"textMessage":"psst"}`), nil); code != 0 {
		t.Fatalf("direct message: 0x%02x", code)
	}
	if got := <-seen; got != `directMessage {"user":"bob","message":{"textMessage":"psst"}}` {
		t.Errorf("hook saw %s", got)
	}
	if got := textOf(t, bob.Expect("users/bob/inbox")); got != "psst" {
		t.Errorf("bob got %q", got)
	}
	if code := alice.Publish("users/bob/inbox", 1, []byte(`{"textMessage":"blocked"}`), nil); code != 0x87 {
		t.Errorf("direct message a hook refused: 0x%02x, want 0x87", code)
	}
	<-seen
	if code := alice.RPCErrorCode("directMessage", map[string]any{"user": "bob", "message": map[string]string{"textMessage": "blocked"}}); code != wire.CodeNotAllowed {
		t.Errorf("directMessage RPC a hook refused: %s", code)
	}
}

// A native join that an After hook fails is undone: SUBACK refusal, no membership.
func TestNativeJoinFailedAfter(t *testing.T) {
	h := commands.NewHooks()
	h.After(commands.CommandRoomJoin, func(_ context.Context, call *commands.Call, out *commands.Outcome) error {
		if call.Native && out.Err == nil {
			return errors.New("audit log unavailable")
		}
		return nil
	})
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.Hooks = h })
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	if codes := alice.Subscribe(nil, paho.SubscribeOptions{Topic: "rooms/general", QoS: 1}); codes[0] != 0x80 {
		t.Errorf("SUBACK 0x%02x, want 0x80", codes[0])
	}
	if code := alice.RPCErrorCode("roomHistoryInfo", map[string]any{"room": "general"}); code != wire.CodeNotJoined {
		t.Errorf("roomHistoryInfo after the refused join: %s, want notJoined", code)
	}
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})
	var users []string
	admin.MustRPC("roomGetAccessList", map[string]any{"room": "general", "list": "userlist"}, &users)
	if len(users) != 0 {
		t.Errorf("userlist %v, want none", users)
	}
}
