package gateway

import (
	"context"
	"encoding/json"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/devices"
	"github.com/roomq/roomq/store"
)

type nopSessions struct{}

func (nopSessions) Connected(context.Context, *devices.Session) error    { return nil }
func (nopSessions) Disconnected(context.Context, *devices.Session, bool) {}
func (nopSessions) UserConnections(context.Context, string) ([]store.Connection, error) {
	return nil, nil
}

// Any client frame gets one answer: a JSON object with an event, never a panic.
func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		`{"action":"ping"}`, `{"action":"sub","data":["msg","online"]}`, `{"action":"unsub","data":["offline"]}`,
		`{"action":"lsunsub"}`, `{"action":"lsol"}`, `{"action":"lsol","data":["a","b"]}`, `{"action":"x"}`,
		`not json`, `[]`, `{"action":1}`, `{"action":"sub","data":"msg"}`, `null`,
	} {
		f.Add(true, []byte(seed))
	}
	f.Add(false, []byte(`{"action":"ping"}`))
	g, err := New(Options{Authenticator: acl.DevAuth{}, Sessions: nopSessions{}, Topics: mqtt.NewTopicsIndex()})
	if err != nil {
		f.Fatal(err)
	}
	g.online["alice"] = 2
	c := newConn(g, nil, acl.Identity{User: "alice"})
	f.Fuzz(func(t *testing.T, text bool, frame []byte) {
		answer := c.handle(text, frame)
		var got struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal(answer, &got); err != nil || got.Event == "" {
			t.Fatalf("answer %q to %q: %v", answer, frame, err)
		}
	})
}
