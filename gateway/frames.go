package gateway

import (
	"encoding/base64"
	"encoding/json"
	"sort"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/wire"
)

// The events of server frames, {"event": ..., "data": ...}.
const (
	// EventConnected is the first frame of every connection.
	EventConnected = "connected"
	// EventPing answers the action ping, with data "pong".
	EventPing = "ping"
	// EventMsg carries a direct message of the user, as MQTT clients get it on
	// users/{user}/inbox.
	EventMsg = "msg"
	// EventOnline says a user has one more connection: data {"uid", "count"}.
	EventOnline = "online"
	// EventOffline says a user has one connection fewer: data {"uid", "count"}.
	EventOffline = "offline"
	// EventLsol answers the action lsol: data {"user": connections, ...}.
	EventLsol = "lsol"
	// EventError answers a frame the gateway could not act on: data {"code", "message"}.
	EventError = "error"
)

// The actions of client frames, {"action": ..., "data": ...}. The answer to sub, unsub and
// lsunsub is a frame whose event is the action's name.
const (
	// ActionPing asks for {"event":"ping","data":"pong"}.
	ActionPing = "ping"
	// ActionSub subscribes to the events listed in data; answer data "ok".
	ActionSub = "sub"
	// ActionUnsub unsubscribes from the events listed in data; answer data "ok".
	ActionUnsub = "unsub"
	// ActionLsunsub lists the events the connection is not subscribed to.
	ActionLsunsub = "lsunsub"
	// ActionLsol lists the online users with their connection counts: all of them, or those
	// listed in data (with 0 for those offline).
	ActionLsol = "lsol"
)

// events are the events a connection subscribes to, in the order lsunsub lists them.
var events = []string{EventMsg, EventOnline, EventOffline}

// frameConnected is the first frame of every connection.
var frameConnected = mustFrame(EventConnected, nil)

// framePong answers a ping.
var framePong = mustFrame(EventPing, "pong")

// encodeFrame returns the JSON of a server frame, without data when data is nil.
func encodeFrame(event string, data any) ([]byte, error) {
	if data == nil {
		return json.Marshal(struct {
			Event string `json:"event"`
		}{event})
	}
	return json.Marshal(struct {
		Event string `json:"event"`
		Data  any    `json:"data"`
	}{event, data})
}

func mustFrame(event string, data any) []byte {
	b, err := encodeFrame(event, data)
	if err != nil {
		panic(err)
	}
	return b
}

// errorFrame returns an error frame.
func errorFrame(code wire.Code, message string) []byte {
	return mustFrame(EventError, wire.NewError(code, message))
}

// presenceData is the data of online and offline frames.
type presenceData struct {
	UID   string `json:"uid"`
	Count int    `json:"count"`
}

// msgFrame returns the msg frame of a direct message. A payload that is not JSON (a direct
// checker other than text) is carried as {"binary": base64}, as docs/protocol.md has it.
func msgFrame(payload []byte) []byte {
	if json.Valid(payload) {
		out := make([]byte, 0, len(payload)+32)
		out = append(out, `{"event":"msg","data":`...)
		out = append(out, payload...)
		return append(out, '}')
	}
	return mustFrame(EventMsg, map[string]string{"binary": base64.StdEncoding.EncodeToString(payload)})
}

// onInbox is the inline subscription handler of users/+/inbox: it queues the message to the
// user's connections that subscribe to msg. It never blocks.
func (g *Gateway) onInbox(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	t := wire.ParseTopic(pk.TopicName)
	if t.Kind != wire.TopicUserInbox {
		return
	}
	var f []byte
	g.mu.RLock()
	defer g.mu.RUnlock()
	for c := range g.conns[t.Name] {
		if !c.subscribed(EventMsg) {
			continue
		}
		if f == nil {
			f = msgFrame(pk.Payload)
		}
		c.push(f)
	}
}

// onPresence is the inline subscription handler of presence/+: a count above the last one is
// an online event, below it an offline event, queued to every connection that subscribes to
// it; an unchanged count sends nothing. The router delivers the presences of a user one at a
// time, newest version last. It never blocks.
func (g *Gateway) onPresence(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	var p wire.Presence
	if json.Unmarshal(pk.Payload, &p) != nil || pk.TopicName != wire.PresenceTopic(p.User) {
		return
	}
	g.presenceMu.Lock()
	defer g.presenceMu.Unlock()
	prev := g.online[p.User]
	if p.Connections > 0 {
		g.online[p.User] = p.Connections
	} else {
		delete(g.online, p.User)
	}
	event := EventOnline
	switch {
	case p.Connections == prev:
		return
	case p.Connections < prev:
		event = EventOffline
	}
	f, err := encodeFrame(event, presenceData{UID: p.User, Count: p.Connections})
	if err != nil {
		return
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, set := range g.conns {
		for c := range set {
			if c.subscribed(event) {
				c.push(f)
			}
		}
	}
}

// onlineUsers returns the connection counts of users, or of every online user when users is
// empty.
func (g *Gateway) onlineUsers(users []string) map[string]int {
	g.presenceMu.Lock()
	defer g.presenceMu.Unlock()
	if len(users) == 0 {
		out := make(map[string]int, len(g.online))
		for u, n := range g.online {
			out[u] = n
		}
		return out
	}
	out := make(map[string]int, len(users))
	for _, u := range users {
		out[u] = g.online[u]
	}
	return out
}

// action is a client frame.
type action struct {
	Action string          `json:"action"`
	Data   json.RawMessage `json:"data"`
}

// maxLsolUsers bounds the users one lsol may ask about.
const maxLsolUsers = 1000

// handle acts on one client frame and returns the answer to queue, nil for none.
func (c *conn) handle(text bool, b []byte) []byte {
	if !text {
		return errorFrame(wire.CodeBadArgument, "frames are JSON text messages")
	}
	var a action
	if err := json.Unmarshal(b, &a); err != nil {
		return errorFrame(wire.CodeBadArgument, "bad frame: want a JSON object with an action")
	}
	switch a.Action {
	case "":
		return errorFrame(wire.CodeBadArgument, "bad frame: no action")
	case ActionPing:
		return framePong
	case ActionSub, ActionUnsub:
		var evs []string
		if err := json.Unmarshal(a.Data, &evs); err != nil || evs == nil { // [] is fine: hu60bot takes it
			return errorFrame(wire.CodeBadArgument, `data: want a list of events ("msg", "online", "offline")`)
		}
		for _, ev := range evs {
			if !isEvent(ev) {
				return errorFrame(wire.CodeBadArgument, "data: unknown event "+quote(ev))
			}
		}
		c.setSubscribed(evs, a.Action == ActionSub)
		return mustFrame(a.Action, "ok")
	case ActionLsunsub:
		return mustFrame(ActionLsunsub, c.unsubscribed())
	case ActionLsol:
		var users []string
		if len(a.Data) > 0 && string(a.Data) != "null" {
			if err := json.Unmarshal(a.Data, &users); err != nil || len(users) > maxLsolUsers {
				return errorFrame(wire.CodeBadArgument, "data: want a list of at most 1000 user ids, or none")
			}
		}
		return mustFrame(EventLsol, c.g.onlineUsers(users))
	}
	return errorFrame(wire.CodeNoCommand, "unknown action "+quote(a.Action))
}

// isEvent reports whether ev is an event a connection may subscribe to.
func isEvent(ev string) bool {
	for _, e := range events {
		if e == ev {
			return true
		}
	}
	return false
}

// quote returns s as a JSON string, cut to 64 bytes.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// unsubscribed returns the events the connection is not subscribed to, sorted.
func (c *conn) unsubscribed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []string{}
	for _, ev := range events {
		if !c.events[ev] {
			out = append(out, ev)
		}
	}
	sort.Strings(out)
	return out
}
