package broker

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestBatchConnCloseWritesBatch checks that closing a connection in the middle of a batch
// still writes what the batch gathered (a DISCONNECT written during an outbox's batch), and
// that a batch is written in one piece when it ends.
func TestBatchConnCloseWritesBatch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := batchListener{ln}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	bc := c.(*batchConn)

	bc.StartBatch()
	for _, s := range []string{"one ", "two "} {
		if _, err := bc.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bc.EndBatch(); err != nil {
		t.Fatal(err)
	}
	bc.StartBatch()
	if _, err := bc.Write([]byte("disconnect")); err != nil {
		t.Fatal(err)
	}
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "one two disconnect" {
		t.Errorf("peer read %q, want %q", got, "one two disconnect")
	}
}
