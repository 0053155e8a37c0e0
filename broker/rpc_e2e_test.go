package broker_test

import (
	"encoding/json"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/wire"
)

// Every room command succeeds for the owner and a joined user, and fails with the documented
// code otherwise.
func TestRoomCommands(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: wsURL(b)})

	// roomCreate
	alice.MustRPC("roomCreate", map[string]any{"room": "lab"}, nil)
	if code := alice.RPCErrorCode("roomCreate", map[string]any{"room": "lab"}); code != wire.CodeRoomExists {
		t.Errorf("second roomCreate: %s, want roomExists", code)
	}
	if code := alice.RPCErrorCode("roomCreate", map[string]any{"room": "a/b"}); code != wire.CodeInvalidName {
		t.Errorf("roomCreate a/b: %s, want invalidName", code)
	}
	if code := alice.RPCErrorCode("roomCreate", map[string]any{"room": "x", "checker": "nope"}); code != wire.CodeBadArgument {
		t.Errorf("roomCreate with unknown checker: %s, want badArgument", code)
	}
	if code := alice.RPCErrorCode("roomCreate", map[string]any{"room": 5}); code != wire.CodeBadArgument {
		t.Errorf("roomCreate room=5: %s, want badArgument", code)
	}

	// roomGetOwner and reads need to be joined (or own the room).
	var owner struct{ Owner string }
	alice.MustRPC("roomGetOwner", map[string]any{"room": "lab"}, &owner)
	if owner.Owner != "alice" {
		t.Errorf("owner = %q, want alice", owner.Owner)
	}
	for _, cmd := range []string{"roomGetOwner", "roomHistoryInfo", "roomRecentHistory", "roomNotificationsInfo"} {
		if code := bob.RPCErrorCode(cmd, map[string]any{"room": "lab"}); code != wire.CodeNotJoined {
			t.Errorf("%s by a non-member: %s, want notJoined", cmd, code)
		}
	}
	if code := bob.RPCErrorCode("roomHistoryInfo", map[string]any{"room": "nope"}); code != wire.CodeNoRoom {
		t.Errorf("roomHistoryInfo of a missing room: %s, want noRoom", code)
	}

	// roomJoin subscribes the calling connection.
	var joined struct{ Connections int }
	bob.MustRPC("roomJoin", map[string]any{"room": "lab"}, &joined)
	if joined.Connections != 1 {
		t.Errorf("roomJoin connections = %d, want 1", joined.Connections)
	}
	var users []string
	bob.MustRPC("roomGetAccessList", map[string]any{"room": "lab", "list": "userlist"}, &users)
	if len(users) != 1 || users[0] != "bob" {
		t.Errorf("userlist = %v, want [bob]", users)
	}
	if code := bob.RPCErrorCode("roomGetAccessList", map[string]any{"room": "lab", "list": "friends"}); code != wire.CodeNoList {
		t.Errorf("unknown list: %s, want noList", code)
	}

	// roomMessage posts and the joined connection receives it.
	var posted struct{ ID uint64 }
	alice.MustRPC("roomMessage", map[string]any{"room": "lab", "message": map[string]string{"textMessage": "hi"}}, &posted)
	if posted.ID != 1 {
		t.Errorf("roomMessage id = %d, want 1", posted.ID)
	}
	if m := decodeRoomMsg(t, bob.Expect("rooms/lab")); m.ID != 1 || m.Author != "alice" {
		t.Errorf("bob got %+v", m)
	}
	if code := alice.RPCErrorCode("roomMessage", map[string]any{"room": "lab", "message": map[string]int{"textMessage": 1}}); code != wire.CodeBadMessage {
		t.Errorf("bad roomMessage: %s, want badMessage", code)
	}
	if code := alice.RPCErrorCode("roomMessage", map[string]any{"room": "lab"}); code != wire.CodeBadArgument {
		t.Errorf("roomMessage without message: %s, want badArgument", code)
	}

	// History reads.
	var info struct {
		LastMessageID         uint64 `json:"lastMessageId"`
		HistorySize           int    `json:"historySize"`
		HistoryMaxSize        int    `json:"historyMaxSize"`
		HistoryMaxGetMessages int    `json:"historyMaxGetMessages"`
		Epoch                 string `json:"epoch"`
	}
	bob.MustRPC("roomHistoryInfo", map[string]any{"room": "lab"}, &info)
	if info.LastMessageID != 1 || info.HistorySize != 1 || info.HistoryMaxSize != 10000 || info.HistoryMaxGetMessages != 100 || info.Epoch == "" {
		t.Errorf("roomHistoryInfo = %+v", info)
	}
	for i := 0; i < 4; i++ {
		alice.MustRPC("roomMessage", map[string]any{"room": "lab", "message": map[string]string{"textMessage": "more"}}, nil)
		bob.Expect("rooms/lab")
	}
	var hist []roomMsg
	bob.MustRPC("roomHistoryGet", map[string]any{"room": "lab", "id": 2, "limit": 2}, &hist)
	if len(hist) != 2 || hist[0].ID != 3 || hist[1].ID != 4 {
		t.Errorf("roomHistoryGet after 2 limit 2 = %+v, want ids 3, 4", hist)
	}
	if code := bob.RPCErrorCode("roomHistoryGet", map[string]any{"room": "lab", "id": "two"}); code != wire.CodeBadArgument {
		t.Errorf("roomHistoryGet id=\"two\": %s, want badArgument", code)
	}
	bob.MustRPC("roomRecentHistory", map[string]any{"room": "lab"}, &hist)
	if len(hist) != 5 || hist[0].ID != 1 || hist[4].ID != 5 {
		t.Errorf("roomRecentHistory = %+v, want ids 1..5", hist)
	}

	var seen struct {
		Joined    bool
		Timestamp int64
	}
	alice.MustRPC("roomUserSeen", map[string]any{"room": "lab", "user": "bob"}, &seen)
	if !seen.Joined || seen.Timestamp == 0 {
		t.Errorf("roomUserSeen bob = %+v, want joined", seen)
	}
	var notif map[string]bool
	bob.MustRPC("roomNotificationsInfo", map[string]any{"room": "lab"}, &notif)
	if !notif["enableUserlistUpdates"] || !notif["enableAccessListsUpdates"] {
		t.Errorf("roomNotificationsInfo = %v", notif)
	}

	// roomLeave ends the subscription; a second leave is notJoined.
	bob.MustRPC("roomLeave", map[string]any{"room": "lab"}, &joined)
	if joined.Connections != 0 {
		t.Errorf("roomLeave connections = %d, want 0", joined.Connections)
	}
	if code := bob.RPCErrorCode("roomLeave", map[string]any{"room": "lab"}); code != wire.CodeNotJoined {
		t.Errorf("second roomLeave: %s, want notJoined", code)
	}
	alice.MustRPC("roomMessage", map[string]any{"room": "lab", "message": map[string]string{"textMessage": "gone"}}, nil)
	bob.MustRPC("listOwnSockets", map[string]any{}, nil) // a round trip after the message
	bob.ExpectNone("rooms/lab", 0)

	// roomDelete: owner only; members learn of it.
	bob.MustRPC("roomJoin", map[string]any{"room": "lab"}, nil)
	bob.MustSubscribe("users/bob/events")
	if code := bob.RPCErrorCode("roomDelete", map[string]any{"room": "lab"}); code != wire.CodeNotAllowed {
		t.Errorf("roomDelete by non-owner: %s, want notAllowed", code)
	}
	alice.MustRPC("roomDelete", map[string]any{"room": "lab"}, nil)
	if ev := bob.ExpectEvent("users/bob/events", "roomDeleted"); ev["room"] != "lab" {
		t.Errorf("roomDeleted = %v", ev)
	}
	if code := alice.RPCErrorCode("roomGetOwner", map[string]any{"room": "lab"}); code != wire.CodeNoRoom {
		t.Errorf("roomGetOwner after delete: %s, want noRoom", code)
	}
}

// Unknown commands, bad JSON and wrong types get error objects; the connection stays usable.
func TestRPCBadInput(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	c := mqtttest.Dial(t, "carol", mqtttest.Options{URL: tcpURL(b)})
	if code := c.RPCErrorCode("noSuchCommand", map[string]any{}); code != wire.CodeNoCommand {
		t.Errorf("unknown command: %s, want noCommand", code)
	}
	for _, payload := range []string{`{bad json`, `[1,2]`, `"room"`, `{"room": ["general"]}`} {
		_, rerr := c.RPCRaw("roomHistoryInfo", []byte(payload))
		if rerr == nil || rerr.Code != wire.CodeBadArgument {
			t.Errorf("payload %s: %+v, want badArgument", payload, rerr)
		}
	}
	_, rerr := c.RPCRaw("roomHistoryInfo", []byte(`{"room": 5}`))
	if rerr == nil || rerr.Code != wire.CodeBadArgument || !contains(rerr.Message, "room") {
		t.Errorf("wrong type: %+v, want badArgument naming room", rerr)
	}
	// A response topic outside the caller's namespace is refused.
	code := c.Publish("$rpc/listOwnSockets", 1, []byte(`{}`), &paho.PublishProperties{ResponseTopic: "users/bob/replies/x", CorrelationData: []byte("1")})
	if code != 0x87 {
		t.Errorf("foreign response topic: PUBACK 0x%02x, want 0x87", code)
	}
	c.MustRPC("listOwnSockets", map[string]any{}, nil)
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// The v3.1.1 envelope carries args, the response topic and the correlation data.
func TestV3RPCEnvelope(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	v3, err := mqtttest.DialV3(t, tcpURL(b), "vera", "")
	if err != nil {
		t.Fatal(err)
	}
	resp := v3.RPC("roomJoin", map[string]any{"room": "general"}, "c-1")
	if string(resp["correlationData"]) != `"c-1"` {
		t.Errorf("correlationData = %s, want \"c-1\"", resp["correlationData"])
	}
	if string(resp["result"]) != `{"connections":1}` {
		t.Errorf("result = %s, want {\"connections\":1}", resp["result"])
	}
	resp = v3.RPC("roomHistoryGet", map[string]any{"room": "nope"}, "c-2")
	var e wire.Error
	if err := json.Unmarshal(resp["error"], &e); err != nil || e.Code != wire.CodeNoRoom {
		t.Errorf("error = %s, want noRoom", resp["error"])
	}
}

// Response Information in the CONNACK names the client's replies topic.
func TestResponseInformation(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	c := mqtttest.Dial(t, "rita", mqtttest.Options{URL: tcpURL(b), ClientID: "rita-phone"})
	if c.Connack.Properties == nil || c.Connack.Properties.ResponseInfo != "users/rita/replies/rita-phone" {
		t.Fatalf("CONNACK response information = %+v", c.Connack.Properties)
	}
}

// Direct messages reach every connection of the target, echo to the sender's other
// connections, and fail when the target is offline or is the sender.
func TestDirectMessages(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice1 := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	alice2 := mqtttest.Dial(t, "alice", mqtttest.Options{URL: wsURL(b)})
	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(b)})
	bob.MustSubscribe("users/bob/inbox")
	alice1.MustSubscribe("users/alice/events")
	alice2.MustSubscribe("users/alice/events")

	var res struct{ Timestamp int64 }
	alice1.MustRPC("directMessage", map[string]any{"user": "bob", "message": map[string]string{"textMessage": "psst"}}, &res)
	var dm struct {
		TextMessage string `json:"textMessage"`
		Author      string `json:"author"`
		Timestamp   int64  `json:"timestamp"`
	}
	if err := json.Unmarshal(bob.Expect("users/bob/inbox").Payload, &dm); err != nil || dm.Author != "alice" || dm.TextMessage != "psst" || dm.Timestamp != res.Timestamp {
		t.Fatalf("inbox got %+v (%v)", dm, err)
	}
	if ev := alice2.ExpectEvent("users/alice/events", "directMessageEcho"); ev["to"] != "bob" {
		t.Errorf("echo = %v", ev)
	}

	// Native publish to the inbox.
	if code := alice1.Publish("users/bob/inbox", 1, text("native"), nil); code != 0 {
		t.Errorf("publish to inbox: 0x%02x", code)
	}
	if err := json.Unmarshal(bob.Expect("users/bob/inbox").Payload, &dm); err != nil || dm.TextMessage != "native" {
		t.Fatalf("inbox got %+v", dm)
	}
	if code := alice1.Publish("users/bob/inbox", 1, []byte("not json"), nil); code != 0x99 {
		t.Errorf("bad direct message: 0x%02x, want 0x99", code)
	}
	if code := alice1.Publish("users/nobody/inbox", 1, text("hello?"), nil); code != 0x10 {
		t.Errorf("direct message to offline user: 0x%02x, want 0x10", code)
	}
	if code := alice1.RPCErrorCode("directMessage", map[string]any{"user": "nobody", "message": map[string]string{"textMessage": "x"}}); code != wire.CodeNoUserOnline {
		t.Errorf("directMessage to offline user: %s, want noUserOnline", code)
	}
	if code := alice1.RPCErrorCode("directMessage", map[string]any{"user": "alice", "message": map[string]string{"textMessage": "x"}}); code != wire.CodeNotAllowed {
		t.Errorf("directMessage to oneself: %s, want notAllowed", code)
	}
}

// systemMessage reaches the caller's other connections; listOwnSockets lists every connection
// with its rooms; disconnect ends one of them.
func TestSocketsSystemMessageDisconnect(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	a1 := mqtttest.Dial(t, "ann", mqtttest.Options{URL: tcpURL(b), ClientID: "ann-1"})
	a2 := mqtttest.Dial(t, "ann", mqtttest.Options{URL: wsURL(b), ClientID: "ann-2"})
	a2.MustSubscribe("users/ann/events", "rooms/general")

	a1.MustRPC("systemMessage", map[string]any{"data": map[string]int{"n": 1}}, nil)
	ev := a2.ExpectEvent("users/ann/events", "systemMessage")
	if d, _ := ev["data"].(map[string]any); d["n"] != float64(1) {
		t.Errorf("systemMessage = %v", ev)
	}
	var sockets map[string][]string
	a1.MustRPC("listOwnSockets", map[string]any{}, &sockets)
	if len(sockets) != 2 || len(sockets["ann-1"]) != 0 || len(sockets["ann-2"]) != 1 || sockets["ann-2"][0] != "general" {
		t.Errorf("listOwnSockets = %v", sockets)
	}
	if code := a1.RPCErrorCode("disconnect", map[string]any{"clientId": "someone-else"}); code != wire.CodeBadArgument {
		t.Errorf("disconnect of a foreign client: %s, want badArgument", code)
	}
	a1.MustRPC("disconnect", map[string]any{"clientId": "ann-2"}, nil)
	<-a2.Lost()
	if d := a2.ServerDisconnect(); d == nil || d.ReasonCode != 0x98 {
		t.Errorf("DISCONNECT = %+v, want 0x98", d)
	}
	mqtttest.WaitFor(t, mqtttest.Timeout, "one socket left", func() bool {
		var s map[string][]string
		a1.MustRPC("listOwnSockets", map[string]any{}, &s)
		return len(s) == 1
	})
}
