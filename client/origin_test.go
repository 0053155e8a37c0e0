package client_test

import (
	"errors"
	"testing"

	"github.com/roomq/roomq/client"
	"github.com/roomq/roomq/internal/mqtttest"
)

// TestSendWithOrigin posts messages with an origin through SendWith: the origin reaches the
// members as Message.OriginBroker and OriginID, a resend of a stored origin is acknowledged
// but not delivered again, a malformed origin is refused, and a plain message has none.
func TestSendWithOrigin(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	alice := connect(t, tcpURL(b), "alice", nil)
	gw := connect(t, wsURL(b), "gw", nil)
	ctx := testCtx(t)

	msgs := newInbox[client.Message]()
	if err := alice.Join(ctx, "general", msgs.put, nil); err != nil {
		t.Fatal(err)
	}
	origin := client.SendOptions{OriginBroker: "edge", OriginID: 7, OriginEpoch: "e1"}
	if err := gw.SendWith(ctx, "general", client.TextMessage("bridged"), origin); err != nil {
		t.Fatal(err)
	}
	m := msgs.next(t, "bridged message")
	if m.ID != 1 || m.Author != "gw" || m.Text() != "bridged" || m.OriginBroker != "edge" || m.OriginID != 7 {
		t.Fatalf("bridged message = %+v", m)
	}

	// The same origin again is a resend: acknowledged, not stored twice.
	if err := gw.SendWith(ctx, "general", client.TextMessage("bridged again"), origin); err != nil {
		t.Fatalf("resend: %v", err)
	}
	// Half an origin is refused.
	if err := gw.SendWith(ctx, "general", client.TextMessage("no broker"), client.SendOptions{OriginID: 8}); !errors.Is(err, client.ErrBadMessage) {
		t.Fatalf("origin without a broker: %v, want ErrBadMessage", err)
	}
	// No options: a plain message, without origin.
	if err := gw.SendWith(ctx, "general", client.TextMessage("plain"), client.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	m = msgs.next(t, "plain message")
	if m.ID != 2 || m.Text() != "plain" || m.OriginBroker != "" || m.OriginID != 0 || m.OriginEpoch != "" {
		t.Fatalf("plain message = %+v", m)
	}
}
