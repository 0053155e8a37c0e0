package adminapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/store"
)

const token = "s3cret-admin-token"

// api is a client of one broker's admin API.
type api struct {
	t     *testing.T
	b     *broker.Broker
	base  string
	token string
}

func start(t *testing.T) *api {
	t.Helper()
	b := mqtttest.StartBroker(t, func(o *broker.Options) { o.AdminToken = token })
	return &api{t: t, b: b, base: "http://" + b.HTTPAddr(), token: token}
}

// do sends a request with body (encoded as JSON unless it is a string) and returns the status
// and the decoded JSON response.
func (a *api) do(method, path string, body any) (int, map[string]any) {
	a.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	client := http.Client{Timeout: mqtttest.Timeout}
	resp, err := client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		a.t.Fatalf("%s %s: status %d, body %q is not a JSON object", method, path, resp.StatusCode, data)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		a.t.Errorf("%s %s: Content-Type %q", method, path, got)
	}
	return resp.StatusCode, out
}

// want checks the status of a request, and the error code when status is not 2xx.
func (a *api) want(method, path string, body any, status int, code string) map[string]any {
	a.t.Helper()
	got, out := a.do(method, path, body)
	if got != status {
		a.t.Fatalf("%s %s: status %d (%v), want %d", method, path, got, out, status)
	}
	if code != "" {
		e, _ := out["error"].(map[string]any)
		if e == nil || e["code"] != code {
			a.t.Fatalf("%s %s: %v, want error code %s", method, path, out, code)
		}
	}
	return out
}

func tcpURL(b *broker.Broker) string { return "tcp://" + b.MQTTAddr() }

// Requests need the token; without a configured token the API is off.
func TestToken(t *testing.T) {
	a := start(t)
	a.want("GET", "/api/users", nil, 200, "")
	for _, tok := range []string{"", "wrong", token + "x", strings.ToUpper(token)} {
		a.token = tok
		a.want("GET", "/api/users", nil, 401, "unauthorized")
	}
	a.token = token
	a.want("GET", "/api/nowhere", nil, 404, "notFound")
	a.want("PUT", "/api/rooms/general", nil, 404, "notFound")

	off := &api{t: t, b: mqtttest.StartBroker(t, nil), token: token}
	off.base = "http://" + off.b.HTTPAddr()
	off.want("GET", "/api/users", nil, 404, "notFound")
}

// POST /api/exec runs any command as any user, with or without permission checks.
func TestExec(t *testing.T) {
	a := start(t)
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: tcpURL(a.b)})
	alice.MustRPC("roomCreate", map[string]any{"room": "lab", "whitelistOnly": true}, nil)

	out := a.want("POST", "/api/exec", map[string]any{"user": "alice", "command": "roomGetOwner", "args": map[string]any{"room": "lab"}}, 200, "")
	if res, _ := out["result"].(map[string]any); res["owner"] != "alice" {
		t.Errorf("roomGetOwner: %v", out)
	}
	// bob is not allowed in, unless permissions are bypassed.
	a.want("POST", "/api/exec", map[string]any{"user": "bob", "command": "roomMessage", "args": map[string]any{"room": "lab", "message": map[string]string{"textMessage": "hi"}}}, 403, "notAllowed")
	a.want("POST", "/api/exec", map[string]any{"user": "bob", "command": "roomHistoryInfo", "args": map[string]any{"room": "lab"}}, 403, "notJoined")
	out = a.want("POST", "/api/exec", map[string]any{"user": "bob", "command": "roomMessage", "bypassPermissions": true, "args": map[string]any{"room": "lab", "message": map[string]string{"textMessage": "hi"}}}, 200, "")
	if res, _ := out["result"].(map[string]any); res["id"] != 1.0 {
		t.Errorf("roomMessage with bypass: %v", out)
	}
	// A calling connection of the user, for roomJoin.
	a.want("POST", "/api/exec", map[string]any{"user": "alice", "clientId": alice.ID, "command": "roomJoin", "args": map[string]any{"room": "lab"}}, 200, "")
	var users []string
	alice.MustRPC("roomGetAccessList", map[string]any{"room": "lab", "list": "userlist"}, &users)
	if len(users) != 1 || users[0] != "alice" {
		t.Errorf("userlist after a server-side roomJoin: %v", users)
	}

	for _, c := range []struct {
		body   any
		status int
		code   string
	}{
		{map[string]any{"user": "alice", "command": "nope"}, 400, "noCommand"},
		{map[string]any{"user": "alice"}, 400, "badArgument"},
		{map[string]any{"user": "a/b", "command": "listOwnSockets"}, 400, "invalidName"},
		{map[string]any{"user": "alice", "command": "roomCreate", "args": map[string]any{"room": "lab"}}, 409, "roomExists"},
		{map[string]any{"user": "alice", "command": "roomHistoryInfo", "args": map[string]any{"room": "none"}}, 404, "noRoom"},
		{map[string]any{"user": "alice", "command": "roomAddToList", "args": map[string]any{"room": "lab", "list": "x", "users": []string{"bob"}}}, 400, "noList"},
		{map[string]any{"user": "alice", "command": "roomJoin", "clientId": "not-a-connection", "args": map[string]any{"room": "lab"}}, 404, "noUserOnline"},
		{map[string]any{"user": "alice", "command": "x", "extra": 1}, 400, "badArgument"},
		{`{"user": "alice", `, 400, "badArgument"},
		{`{"user": "alice", "command": "roomCreate", "args": {"room": "` + strings.Repeat("x", 2<<20) + `"}}`, 413, "tooLarge"},
	} {
		a.want("POST", "/api/exec", c.body, c.status, c.code)
	}
}

// Rooms: create, read, post as the system, send an event, delete.
func TestRooms(t *testing.T) {
	a := start(t)
	out := a.want("POST", "/api/rooms", map[string]any{"room": "news", "owner": "carol", "checker": "json"}, 201, "")
	if out["owner"] != "carol" || out["checker"] != "json" {
		t.Errorf("created room: %v", out)
	}
	a.want("POST", "/api/rooms", map[string]any{"room": "news"}, 409, "roomExists")
	a.want("POST", "/api/rooms", map[string]any{"room": "a+b"}, 400, "invalidName")
	a.want("GET", "/api/rooms/none", nil, 404, "noRoom")

	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: tcpURL(a.b)})
	bob.MustSubscribe("rooms/news", "rooms/news/events")
	out = a.want("POST", "/api/rooms/news/messages", map[string]any{"message": map[string]any{"headline": "roomq ships"}}, 200, "")
	if out["id"] != 1.0 {
		t.Errorf("post: %v", out)
	}
	var m map[string]any
	if err := json.Unmarshal(bob.Expect("rooms/news").Payload, &m); err != nil || m["headline"] != "roomq ships" || m["author"] != "admin" {
		t.Errorf("delivered %v (%v), want the headline by admin", m, err)
	}
	a.want("POST", "/api/rooms/news/messages", map[string]any{"message": map[string]any{"id": 5}}, 400, "badMessage")
	a.want("POST", "/api/rooms/news/messages", map[string]any{"author": "dave", "message": map[string]any{"x": 1}}, 200, "")
	if err := json.Unmarshal(bob.Expect("rooms/news").Payload, &m); err != nil || m["author"] != "dave" {
		t.Errorf("delivered %v, want author dave", m)
	}

	a.want("POST", "/api/rooms/news/events", map[string]any{"event": "maintenance", "at": "tonight"}, 200, "")
	ev := bob.ExpectEvent("rooms/news/events", "maintenance")
	if ev["at"] != "tonight" {
		t.Errorf("event %v", ev)
	}
	a.want("POST", "/api/rooms/news/events", map[string]any{"at": "tonight"}, 400, "badArgument")
	a.want("POST", "/api/rooms/none/events", map[string]any{"event": "x"}, 404, "noRoom")

	out = a.want("GET", "/api/rooms/news", nil, 200, "")
	hist, _ := out["history"].(map[string]any)
	if hist["lastMessageId"] != 2.0 || len(out["users"].([]any)) != 1 {
		t.Errorf("room info %v", out)
	}

	a.want("DELETE", "/api/rooms/news", nil, 200, "")
	bob.ExpectEvent("rooms/news/events", "roomDeleted")
	a.want("GET", "/api/rooms/news", nil, 404, "noRoom")
	a.want("DELETE", "/api/rooms/news", nil, 404, "noRoom")
}

// Users: presence, direct messages from the backend, disconnects.
func TestUsers(t *testing.T) {
	a := start(t)
	carol1 := mqtttest.Dial(t, "carol", mqtttest.Options{URL: tcpURL(a.b), ClientID: "carol-1"})
	carol2 := mqtttest.Dial(t, "carol", mqtttest.Options{URL: "ws://" + a.b.HTTPAddr() + "/mqtt", ClientID: "carol-2"})
	carol1.MustSubscribe("users/carol/inbox")

	out := a.want("GET", "/api/users/carol", nil, 200, "")
	conns, _ := out["connections"].([]any)
	if out["online"] != true || len(conns) != 2 || conns[0].(map[string]any)["clientId"] != "carol-1" {
		t.Errorf("presence %v", out)
	}
	out = a.want("GET", "/api/users/nobody", nil, 200, "")
	if out["online"] != false {
		t.Errorf("presence of nobody: %v", out)
	}
	mqtttest.WaitFor(t, mqtttest.Timeout, "carol in the online list", func() bool {
		_, out := a.do("GET", "/api/users", nil)
		users, _ := out["users"].([]any)
		for _, u := range users {
			if p := u.(map[string]any); p["user"] == "carol" && p["connections"] == 2.0 {
				return true
			}
		}
		return false
	})

	out = a.want("POST", "/api/users/carol/messages", map[string]any{"message": map[string]string{"textMessage": "your order shipped"}}, 200, "")
	if ts, _ := out["timestamp"].(float64); ts < float64(time.Now().Add(-time.Minute).UnixMilli()) {
		t.Errorf("direct message: %v", out)
	}
	var dm map[string]any
	if err := json.Unmarshal(carol1.Expect("users/carol/inbox").Payload, &dm); err != nil || dm["textMessage"] != "your order shipped" || dm["author"] != "admin" {
		t.Errorf("inbox got %v (%v)", dm, err)
	}
	a.want("POST", "/api/users/carol/messages", map[string]any{"from": "shop", "message": map[string]string{"textMessage": "hi"}}, 200, "")
	if err := json.Unmarshal(carol1.Expect("users/carol/inbox").Payload, &dm); err != nil || dm["author"] != "shop" {
		t.Errorf("inbox got %v", dm)
	}
	a.want("POST", "/api/users/carol/messages", map[string]any{"message": map[string]string{"text": "x"}}, 400, "badMessage")
	a.want("POST", "/api/users/carol/messages", map[string]any{}, 400, "badArgument")
	a.want("POST", "/api/users/nobody/messages", map[string]any{"message": map[string]string{"textMessage": "x"}}, 404, "noUserOnline")

	out = a.want("DELETE", "/api/users/carol/connections", nil, 200, "")
	if out["disconnected"] != 2.0 {
		t.Errorf("disconnect: %v", out)
	}
	for _, c := range []*mqtttest.Client{carol1, carol2} {
		select {
		case <-c.Lost():
		case <-time.After(mqtttest.Timeout):
			t.Fatalf("%s still connected", c.ID)
		}
	}
	if d := carol1.ServerDisconnect(); d == nil || d.ReasonCode != 0x98 {
		t.Errorf("DISCONNECT %+v, want 0x98", d)
	}
	mqtttest.WaitFor(t, mqtttest.Timeout, "carol offline", func() bool {
		_, out := a.do("GET", "/api/users/carol", nil)
		return out["online"] == false
	})
	a.want("DELETE", "/api/users/a+b/connections", nil, 400, "invalidName")
}

// On instances sharing a store, disconnecting a user ends their connections on every
// instance, and a direct message reaches them wherever they are connected.
func TestUsersAcrossInstances(t *testing.T) {
	st := store.NewMemory()
	b1 := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store, o.AdminToken = st, token })
	b2 := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = st })
	a := &api{t: t, b: b1, base: "http://" + b1.HTTPAddr(), token: token}
	dan1 := mqtttest.Dial(t, "dan", mqtttest.Options{URL: tcpURL(b1)})
	dan2 := mqtttest.Dial(t, "dan", mqtttest.Options{URL: tcpURL(b2)})
	dan2.MustSubscribe("users/dan/inbox")

	out := a.want("GET", "/api/users/dan", nil, 200, "")
	if conns, _ := out["connections"].([]any); len(conns) != 2 {
		t.Fatalf("presence %v, want two connections", out)
	}
	a.want("POST", "/api/users/dan/messages", map[string]any{"message": map[string]string{"textMessage": "hello"}}, 200, "")
	dan2.Expect("users/dan/inbox")

	out = a.want("DELETE", "/api/users/dan/connections", nil, 200, "")
	if out["disconnected"] != 2.0 {
		t.Errorf("disconnect: %v", out)
	}
	for _, c := range []*mqtttest.Client{dan1, dan2} {
		select {
		case <-c.Lost():
		case <-time.After(mqtttest.Timeout):
			t.Fatalf("%s still connected", c.ID)
		}
	}
}

// Every endpoint docs/api.md documents exists, and every route is documented.
func TestDocumentedEndpoints(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile("(?m)^### `(GET|POST|DELETE) (/api/[^`]*)`")
	found := heading.FindAllStringSubmatch(string(doc), -1)
	if len(found) != 10 {
		t.Errorf("docs/api.md documents %d endpoints, want the 10 routes of handler.go", len(found))
	}
	a := start(t)
	for _, m := range found {
		path := strings.NewReplacer("{room}", "general", "{user}", "nobody").Replace(m[2])
		_, out := a.do(m[1], path, "{}")
		if e, _ := out["error"].(map[string]any); e != nil && e["code"] == "notFound" {
			t.Errorf("documented endpoint %s %s does not exist", m[1], m[2])
		}
	}
}
