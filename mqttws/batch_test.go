package mqttws_test

import (
	"bytes"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/mqttws"
)

// batcher is what the broker's outbox looks for on a connection.
type batcher interface {
	StartBatch()
	EndBatch() error
}

// TestBatchIsOneMessage checks that the packets written between StartBatch and EndBatch reach
// the client as one binary message holding them in order, and that writes outside a batch are
// one message each.
func TestBatchIsOneMessage(t *testing.T) {
	b := startBroker(t, mqttws.Options{})
	ws, _, err := b.dial(t, nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	rawConnect(t, ws, "batched")
	var cl interface{ WritePacket(packets.Packet) error }
	var bw batcher
	waitFor(t, timeout, func() bool {
		c, ok := b.srv.Clients.Get("batched")
		if ok {
			cl = c
			bw, _ = c.Net.Conn.(batcher)
		}
		return ok
	})
	if bw == nil {
		t.Fatal("the connection cannot batch writes")
	}
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
	ws, _, err := b.dial(t, nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	rawConnect(t, ws, "closed")
	var bw batcher
	var stop func()
	waitFor(t, timeout, func() bool {
		c, ok := b.srv.Clients.Get("closed")
		if ok {
			bw, _ = c.Net.Conn.(batcher)
			stop = func() { _ = b.srv.DisconnectClient(c, packets.ErrSessionTakenOver) }
		}
		return ok
	})
	if bw == nil {
		t.Fatal("the connection cannot batch writes")
	}
	bw.StartBatch()
	stop()
	got := readBinary(t, ws)
	if len(got) == 0 || got[0] != packets.Disconnect<<4 {
		t.Fatalf("got % x, want a DISCONNECT", got)
	}
	if code := expectClose(t, ws); code != 1000 {
		t.Errorf("close code %d, want 1000", code)
	}
}
