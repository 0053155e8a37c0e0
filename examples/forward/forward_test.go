package forward_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/examples/forward"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/store"
)

// Messages of the source rooms, by PUBLISH or RPC, reach the aggregate room once each; the
// aggregate room's own messages and those of other rooms are not forwarded.
func TestForward(t *testing.T) {
	opts := broker.DefaultOptions()
	opts.MQTTAddr, opts.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	opts.Logger = mqtttest.TestLogger()
	opts.Rooms = []store.Room{
		{Name: "sales", Owner: "admin", Checker: "text"},
		{Name: "support", Owner: "admin", Checker: "text"},
		{Name: "random", Owner: "admin", Checker: "text"},
		{Name: "all", Owner: "admin", Checker: "json"},
	}
	b, err := broker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := forward.Install(b.Hooks(), b.API(), forward.Options{Sources: []string{"sales", "support"}, Aggregate: "all", Logger: opts.Logger}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })

	url := "tcp://" + b.MQTTAddr()
	alice := mqtttest.Dial(t, "alice", mqtttest.Options{URL: url})
	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: url})
	watcher.MustSubscribe("rooms/all")

	if code := alice.Publish("rooms/sales", 1, []byte(`{"textMessage":"deal closed"}`), nil); code != 0 {
		t.Fatalf("publish: 0x%02x", code)
	}
	alice.MustRPC("roomMessage", map[string]any{"room": "random", "message": map[string]string{"textMessage": "not forwarded"}}, nil)
	alice.MustRPC("roomMessage", map[string]any{"room": "support", "message": map[string]string{"textMessage": "help!"}}, nil)
	alice.MustRPC("roomMessage", map[string]any{"room": "all", "message": map[string]string{"note": "direct to all"}}, nil)

	type fwd struct {
		From    string `json:"from"`
		Author  string `json:"author"`
		Note    string `json:"note"`
		Message struct {
			TextMessage string `json:"textMessage"`
			Author      string `json:"author"`
			ID          uint64 `json:"id"`
		} `json:"message"`
	}
	var got []fwd
	for range 3 {
		var f fwd
		if err := json.Unmarshal(watcher.Expect("rooms/all").Payload, &f); err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	if got[0].From != "sales" || got[0].Message.TextMessage != "deal closed" || got[0].Message.Author != "alice" || got[0].Author != "admin" {
		t.Errorf("first forwarded message %+v", got[0])
	}
	if got[1].From != "support" || got[1].Message.TextMessage != "help!" {
		t.Errorf("second forwarded message %+v", got[1])
	}
	if got[2].Note != "direct to all" || got[2].From != "" {
		t.Errorf("the aggregate room's own message %+v", got[2])
	}
	// Nothing more: the aggregate room's messages were not forwarded into it again.
	var info struct{ LastMessageID uint64 }
	watcher.MustRPC("roomHistoryInfo", map[string]any{"room": "all"}, &info)
	if info.LastMessageID != 3 {
		t.Errorf("aggregate room has %d messages, want 3", info.LastMessageID)
	}

	if err := forward.Install(commands.NewHooks(), b.API(), forward.Options{Sources: []string{"all"}, Aggregate: "all"}); err == nil {
		t.Error("Install accepted the aggregate room as a source")
	}
}
