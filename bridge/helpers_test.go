package bridge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/bridge"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/client"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/rooms"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 20 * time.Second

// runBridge builds a bridge and runs it until the test ends.
func runBridge(t *testing.T, opts bridge.Options) *bridge.Bridge {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = mqtttest.TestLogger()
	}
	b, err := bridge.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bridge %s: %v", b.Name(), err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("bridge %s did not stop", b.Name())
		}
	})
	return b
}

// waitJoined waits until every room mapping of b is joined on the far side.
func waitJoined(t *testing.T, b *bridge.Bridge) {
	t.Helper()
	mqtttest.WaitFor(t, waitTimeout, "bridge "+b.Name()+" joined", func() bool {
		s := b.Status()
		for _, r := range s.Rooms {
			if !r.Joined {
				return false
			}
		}
		return s.Connected
	})
}

// post posts text to room of br as user.
func post(t *testing.T, br *broker.Broker, user, room, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := br.Commands().PostRoom(ctx, commands.Caller{Identity: acl.Identity{User: user}}, room, client.TextMessage(text)); err != nil {
		t.Fatalf("post %q: %v", text, err)
	}
}

// history returns every stored message of room of br.
func history(t *testing.T, br *broker.Broker, room string) []*rooms.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var out []*rooms.Message
	var after uint64
	for {
		msgs, err := br.Rooms().History(ctx, room, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return out
		}
		out = append(out, msgs...)
		after = msgs[len(msgs)-1].ID
	}
}

// lastID returns the id of the last message of room of br.
func lastID(t *testing.T, br *broker.Broker, room string) uint64 {
	t.Helper()
	info, err := br.Rooms().HistoryInfo(context.Background(), room)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	return info.LastMessageID
}
