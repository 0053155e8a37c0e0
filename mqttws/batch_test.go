package mqttws_test

import (
	"bytes"
	"testing"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/mqttws"
)

// batcher is what the broker's outbox looks for on a connection.
type batcher interface {
	StartBatch()
	EndBatch() error
}

// connectBatcher connects a raw v3.1.1 client called clientID and returns its WebSocket, and
// Mochi's client of it with the connection's batching.
func connectBatcher(t *testing.T, b *broker, clientID string) (*websocket.Conn, *mqtt.Client, batcher) {
	t.Helper()
	ws, _, err := b.dial(t, nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	rawConnect(t, ws, clientID)
	var cl *mqtt.Client
	waitFor(t, timeout, func() bool {
		var ok bool
		cl, ok = b.srv.Clients.Get(clientID)
		return ok
	})
	bw, ok := cl.Net.Conn.(batcher)
	if !ok {
		t.Fatal("the connection cannot batch writes")
	}
	return ws, cl, bw
}

// TestBatchIsOneMessage checks that the packets written between StartBatch and EndBatch reach
// the client as one binary message holding them in order, and that writes outside a batch are
// one message each.
func TestBatchIsOneMessage(t *testing.T) {
	ws, cl, bw := connectBatcher(t, startBroker(t, mqttws.Options{}), "batched")
	publish := func(payload string) packets.Packet {
		return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "t", Payload: []byte(payload)}
	}
	want := func(payloads ...string) []byte {
		var all []byte
		for _, p := range payloads {
			pk := publish(p)
			pk.ProtocolVersion = 4
			all = append(all, encode(t, pk)...)
		}
		return all
	}

	bw.StartBatch()
	for _, p := range []string{"one", "two", "three"} {
		if err := cl.WritePacket(publish(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.EndBatch(); err != nil {
		t.Fatal(err)
	}
	if err := cl.WritePacket(publish("four")); err != nil {
		t.Fatal(err)
	}
	if got := readBinary(t, ws); !bytes.Equal(got, want("one", "two", "three")) {
		t.Errorf("batch message % x\nwant % x", got, want("one", "two", "three"))
	}
	if got := readBinary(t, ws); !bytes.Equal(got, want("four")) {
		t.Errorf("message after the batch % x\nwant % x", got, want("four"))
	}
}

// TestCloseSendsBatch checks that a DISCONNECT written during a batch reaches the client
// when the broker closes the connection before the batch ends (a session taken over while
// the outbox writes), followed by the close message.
func TestCloseSendsBatch(t *testing.T) {
	b := startBroker(t, mqttws.Options{})
	ws, cl, bw := connectBatcher(t, b, "closed")
	bw.StartBatch()
	_ = b.srv.DisconnectClient(cl, packets.ErrSessionTakenOver)
	got := readBinary(t, ws)
	if len(got) == 0 || got[0] != packets.Disconnect<<4 {
		t.Fatalf("got % x, want a DISCONNECT", got)
	}
	if code := expectClose(t, ws); code != 1000 {
		t.Errorf("close code %d, want 1000", code)
	}
}
