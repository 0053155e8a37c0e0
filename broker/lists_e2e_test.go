package broker_test

import (
	"bytes"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/wire"
)

func roomArgs(room, list string, users ...string) map[string]any {
	return map[string]any{"room": room, "list": list, "users": users}
}

func expectList(t *testing.T, c *mqtttest.Client, room, list string, want ...string) {
	t.Helper()
	var got []string
	c.MustRPC("roomGetAccessList", map[string]any{"room": room, "list": list}, &got)
	if len(got) != len(want) {
		t.Fatalf("%s of %s = %v, want %v", list, room, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s of %s = %v, want %v", list, room, got, want)
		}
	}
}

// A blacklisted user loses the room at once on every connection: the subscription ends,
// roomAccessRemoved arrives, nothing more is delivered, and every door is shut.
func TestBlacklistRemovesAtOnce(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	alice.MustRPC("roomCreate", map[string]any{"room": "club"}, nil)
	alice.MustSubscribe("rooms/club", "rooms/club/events")
	bob1 := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(b), ClientID: "bob-1"})
	bob2 := mqtttest.Dial(t, "bob", mqtttest.Options{URL: wsURL(b), ClientID: "bob-2"})
	for _, c := range []*mqtttest.Client{bob1, bob2} {
		c.MustSubscribe("users/bob/events", "rooms/club")
	}
	bob1.MustRPC("roomMessage", map[string]any{"room": "club", "message": map[string]string{"textMessage": "hi"}}, nil)
	bob1.Expect("rooms/club")
	bob2.Expect("rooms/club")
	alice.Expect("rooms/club")

	alice.MustRPC("roomAddToList", roomArgs("club", "blacklist", "bob"), nil)
	for _, c := range []*mqtttest.Client{bob1, bob2} {
		if ev := c.ExpectEvent("users/bob/events", "roomAccessRemoved"); ev["room"] != "club" {
			t.Errorf("%s: roomAccessRemoved = %v", c.ID, ev)
		}
	}
	ev := alice.ExpectEvent("rooms/club/events", "accessListChanged")
	if ev["list"] != "blacklist" || ev["op"] != "add" {
		t.Errorf("accessListChanged = %v", ev)
	}
	if ev := alice.ExpectEvent("rooms/club/events", "userLeft"); ev["user"] != "bob" {
		t.Errorf("userLeft = %v", ev)
	}
	expectList(t, alice, "club", "blacklist", "bob")
	expectList(t, alice, "club", "userlist", "alice")

	// Nothing more reaches bob: alice posts, then a round trip to bob proves it was not queued.
	alice.Publish("rooms/club", 1, text("after the ban"), nil)
	alice.Expect("rooms/club")
	bob1.MustRPC("listOwnSockets", map[string]any{}, nil)
	bob2.MustRPC("listOwnSockets", map[string]any{}, nil)
	bob1.ExpectNone("rooms/club", 0)
	bob2.ExpectNone("rooms/club", 0)

	// Every door: SUBSCRIBE, PUBLISH, RPC.
	if code := bob1.Subscribe(nil, paho.SubscribeOptions{Topic: "rooms/club", QoS: 1})[0]; code != 0x87 {
		t.Errorf("SUBSCRIBE after the ban: 0x%02x, want 0x87", code)
	}
	if code := bob1.Subscribe(nil, paho.SubscribeOptions{Topic: "rooms/club/events", QoS: 1})[0]; code != 0x87 {
		t.Errorf("SUBSCRIBE events after the ban: 0x%02x, want 0x87", code)
	}
	if code := bob1.Publish("rooms/club", 1, text("let me in"), nil); code != 0x87 {
		t.Errorf("PUBLISH after the ban: 0x%02x, want 0x87", code)
	}
	for _, cmd := range []string{"roomJoin", "roomHistoryInfo"} {
		if code := bob1.RPCErrorCode(cmd, map[string]any{"room": "club"}); code != wire.CodeNotAllowed && code != wire.CodeNotJoined {
			t.Errorf("%s after the ban: %s", cmd, code)
		}
	}
	v3, err := mqtttest.DialV3(t, tcpURL(b), "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	v3.Publish("rooms/club", 1, text("v3 sneaks in"))
	var info struct{ LastMessageID uint64 }
	alice.MustRPC("roomHistoryInfo", map[string]any{"room": "club"}, &info)
	if info.LastMessageID != 2 {
		t.Errorf("last id %d after the banned v3 publish, want 2", info.LastMessageID)
	}

	// Lifting the ban lets bob back in.
	alice.MustRPC("roomRemoveFromList", roomArgs("club", "blacklist", "bob"), nil)
	bob1.MustSubscribe("rooms/club")
}

// Whitelist-only mode removes everyone but the owner, admins and whitelisted users.
func TestWhitelistModeAndAdmins(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	owner := mqtttest.Dial(t, "olga", mqtttest.Options{URL: tcpURL(b)})
	owner.MustRPC("roomCreate", map[string]any{"room": "vip"}, nil)
	owner.MustSubscribe("rooms/vip/events")
	users := map[string]*mqtttest.Client{}
	for _, u := range []string{"ann", "ben", "cid"} {
		c := mqtttest.Dial(t, u, mqtttest.Options{URL: tcpURL(b)})
		c.MustSubscribe("users/"+u+"/events", "rooms/vip")
		users[u] = c
	}
	// Only the owner manages admins; admins manage the other lists and the mode.
	if code := users["ann"].RPCErrorCode("roomAddToList", roomArgs("vip", "adminlist", "ann")); code != wire.CodeNotAllowed {
		t.Errorf("non-owner adding an admin: %s, want notAllowed", code)
	}
	owner.MustRPC("roomAddToList", roomArgs("vip", "adminlist", "ann"), nil)
	if code := users["ann"].RPCErrorCode("roomAddToList", roomArgs("vip", "adminlist", "ben")); code != wire.CodeNotAllowed {
		t.Errorf("admin adding an admin: %s, want notAllowed", code)
	}
	users["ann"].MustRPC("roomAddToList", roomArgs("vip", "whitelist", "ben"), nil)
	if code := users["ann"].RPCErrorCode("roomAddToList", roomArgs("vip", "blacklist", "olga")); code != wire.CodeNotAllowed {
		t.Errorf("blacklisting the owner: %s, want notAllowed", code)
	}
	if code := users["ben"].RPCErrorCode("roomSetWhitelistMode", map[string]any{"room": "vip", "mode": true}); code != wire.CodeNotAllowed {
		t.Errorf("non-admin setting the mode: %s, want notAllowed", code)
	}

	var mode struct{ WhitelistOnly bool }
	users["ann"].MustRPC("roomSetWhitelistMode", map[string]any{"room": "vip", "mode": true}, &mode)
	if !mode.WhitelistOnly {
		t.Errorf("roomSetWhitelistMode = %+v", mode)
	}
	if ev := owner.ExpectEvent("rooms/vip/events", "modeChanged"); ev["whitelistOnly"] != true {
		t.Errorf("modeChanged = %v", ev)
	}
	// cid is neither admin nor whitelisted: removed. ann (admin) and ben (whitelisted) stay.
	users["cid"].ExpectEvent("users/cid/events", "roomAccessRemoved")
	expectList(t, owner, "vip", "userlist", "ann", "ben")
	users["ben"].MustRPC("roomGetWhitelistMode", map[string]any{"room": "vip"}, &mode)
	if !mode.WhitelistOnly {
		t.Error("roomGetWhitelistMode = false")
	}
	// Taking ben off the whitelist removes him; removing ann from the admins removes her.
	owner.MustRPC("roomRemoveFromList", roomArgs("vip", "whitelist", "ben"), nil)
	users["ben"].ExpectEvent("users/ben/events", "roomAccessRemoved")
	owner.MustRPC("roomRemoveFromList", roomArgs("vip", "adminlist", "ann"), nil)
	users["ann"].ExpectEvent("users/ann/events", "roomAccessRemoved")
	expectList(t, owner, "vip", "userlist")
	expectList(t, owner, "vip", "adminlist")

	if code := owner.RPCErrorCode("roomAddToList", roomArgs("vip", "userlist", "x")); code != wire.CodeNotAllowed {
		t.Errorf("changing the userlist: %s, want notAllowed", code)
	}
	if code := owner.RPCErrorCode("roomAddToList", roomArgs("vip", "friends", "x")); code != wire.CodeNoList {
		t.Errorf("unknown list: %s, want noList", code)
	}
	if code := owner.RPCErrorCode("roomAddToList", roomArgs("vip", "whitelist", "a/b")); code != wire.CodeInvalidName {
		t.Errorf("bad user name: %s, want invalidName", code)
	}
	if code := owner.RPCErrorCode("roomAddToList", map[string]any{"room": "vip", "list": "whitelist", "users": "ann"}); code != wire.CodeBadArgument {
		t.Errorf("users not an array: %s, want badArgument", code)
	}
}

// Access lists have a size limit.
func TestListLimit(t *testing.T) {
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.ListLimit = 2 })
	c := mqtttest.Dial(t, "lea", mqtttest.Options{URL: tcpURL(b)})
	c.MustRPC("roomCreate", map[string]any{"room": "small"}, nil)
	c.MustRPC("roomAddToList", roomArgs("small", "whitelist", "a", "b"), nil)
	if code := c.RPCErrorCode("roomAddToList", roomArgs("small", "whitelist", "c")); code != wire.CodeListLimitExceeded {
		t.Errorf("over the limit: %s, want listLimitExceeded", code)
	}
	if code := c.RPCErrorCode("directAddToList", map[string]any{"list": "blacklist", "users": []string{"a", "b", "c"}}); code != wire.CodeListLimitExceeded {
		t.Errorf("direct list over the limit: %s, want listLimitExceeded", code)
	}
}

// Each user's direct-message lists decide who may write to them.
func TestDirectLists(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(b)})
	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(b)})
	bob.MustSubscribe("users/bob/inbox")
	dm := map[string]any{"user": "bob", "message": map[string]string{"textMessage": "hi"}}

	bob.MustRPC("directAddToList", map[string]any{"list": "blacklist", "users": []string{"alice"}}, nil)
	if code := alice.RPCErrorCode("directMessage", dm); code != wire.CodeNotAllowed {
		t.Errorf("blacklisted sender: %s, want notAllowed", code)
	}
	if code := alice.Publish("users/bob/inbox", 1, text("hi"), nil); code != 0x87 {
		t.Errorf("blacklisted sender publishing: 0x%02x, want 0x87", code)
	}
	bob.MustRPC("directRemoveFromList", map[string]any{"list": "blacklist", "users": []string{"alice"}}, nil)
	alice.MustRPC("directMessage", dm, nil)
	bob.Expect("users/bob/inbox")

	var mode struct{ WhitelistOnly bool }
	bob.MustRPC("directSetWhitelistMode", map[string]any{"mode": true}, &mode)
	bob.MustRPC("directGetWhitelistMode", map[string]any{}, &mode)
	if !mode.WhitelistOnly {
		t.Error("directGetWhitelistMode = false")
	}
	if code := alice.RPCErrorCode("directMessage", dm); code != wire.CodeNotAllowed {
		t.Errorf("not whitelisted: %s, want notAllowed", code)
	}
	bob.MustRPC("directAddToList", map[string]any{"list": "whitelist", "users": []string{"alice"}}, nil)
	alice.MustRPC("directMessage", dm, nil)
	bob.Expect("users/bob/inbox")
	var list []string
	bob.MustRPC("directGetAccessList", map[string]any{"list": "whitelist"}, &list)
	if len(list) != 1 || list[0] != "alice" {
		t.Errorf("directGetAccessList = %v", list)
	}
	if code := bob.RPCErrorCode("directAddToList", map[string]any{"list": "adminlist", "users": []string{"x"}}); code != wire.CodeNoList {
		t.Errorf("direct adminlist: %s, want noList", code)
	}
	// Global admins write to anyone.
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})
	admin.MustRPC("directMessage", dm, nil)
	bob.Expect("users/bob/inbox")
}

// Access removed mid-stream: while another client keeps posting, nothing posted after the
// blacklist command returned reaches the removed user.
func TestAccessRemovedMidStream(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	owner := mqtttest.Dial(t, "oz", mqtttest.Options{URL: tcpURL(b)})
	owner.MustRPC("roomCreate", map[string]any{"room": "live"}, nil)
	owner.MustSubscribe("rooms/live")
	victim := mqtttest.Dial(t, "vic", mqtttest.Options{URL: wsURL(b)})
	victim.MustSubscribe("rooms/live", "users/vic/events")
	poster := mqtttest.Dial(t, "pete", mqtttest.Options{URL: tcpURL(b)})

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			poster.Publish("rooms/live", 1, text("tick"), nil)
		}
	}()
	// Let the stream reach the victim, then remove them.
	victim.Expect("rooms/live")
	owner.MustRPC("roomAddToList", roomArgs("live", "blacklist", "vic"), nil)
	var info struct{ LastMessageID uint64 }
	owner.MustRPC("roomHistoryInfo", map[string]any{"room": "live"}, &info)
	cutoff := info.LastMessageID // every message after the removal has a greater id
	victim.ExpectEvent("users/vic/events", "roomAccessRemoved")
	// Keep streaming until the owner has seen well past the cutoff.
	for {
		if m := decodeRoomMsg(t, owner.Expect("rooms/live")); m.ID > cutoff+20 {
			break
		}
	}
	close(stop)
	<-done
	victim.MustRPC("listOwnSockets", map[string]any{}, nil)
	for {
		p, ok := victim.TryNext("rooms/live")
		if !ok {
			break
		}
		if m := decodeRoomMsg(t, p); m.ID > cutoff {
			t.Fatalf("removed user got message %d, posted after the removal (cutoff %d)", m.ID, cutoff)
		}
	}
}

// A user who lost access to a room no longer gets its events.
func TestRoomEventsStopAfterRemoval(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	owner := mqtttest.Dial(t, "ola", mqtttest.Options{URL: tcpURL(b)})
	owner.MustRPC("roomCreate", map[string]any{"room": "den"}, nil)
	owner.MustSubscribe("rooms/den/events")
	eve := mqtttest.Dial(t, "eve", mqtttest.Options{URL: tcpURL(b)})
	eve.MustSubscribe("rooms/den/events")
	owner.MustRPC("roomAddToList", roomArgs("den", "blacklist", "eve"), nil)
	owner.ExpectEvent("rooms/den/events", "accessListChanged")
	owner.MustRPC("roomAddToList", roomArgs("den", "whitelist", "zed"), nil)
	owner.ExpectEvent("rooms/den/events", "accessListChanged")
	eve.MustRPC("listOwnSockets", map[string]any{}, nil)
	for {
		p, ok := eve.TryNext("rooms/den/events")
		if !ok {
			break
		}
		if bytes.Contains(p.Payload, []byte("zed")) {
			t.Fatalf("removed user got a later event: %s", p.Payload)
		}
	}
	if subs, _ := b.Subscriptions(eve.ID); len(subs) != 1 { // only its replies topic is left
		t.Errorf("eve's subscriptions = %v, want the events subscription gone", subs)
	}
}

// Only the owner (or a global admin) deletes a room; room admins may not.
func TestRoomDeleteOwnerOnly(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	owner := mqtttest.Dial(t, "otto", mqtttest.Options{URL: tcpURL(b)})
	owner.MustRPC("roomCreate", map[string]any{"room": "keep"}, nil)
	owner.MustRPC("roomAddToList", roomArgs("keep", "adminlist", "amy"), nil)
	amy := mqtttest.Dial(t, "amy", mqtttest.Options{URL: tcpURL(b)})
	if code := amy.RPCErrorCode("roomDelete", map[string]any{"room": "keep"}); code != wire.CodeNotAllowed {
		t.Errorf("room admin deleting: %s, want notAllowed", code)
	}
	admin := mqtttest.Dial(t, "admin", mqtttest.Options{URL: tcpURL(b)})
	admin.MustRPC("roomDelete", map[string]any{"room": "keep"}, nil)
}
