package hooks

import (
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestOutboxOrder checks that the queue gives packets back in the order they were queued
// while it is taken from and added to, reusing its array, and that drop removes exactly the
// packets of one subscription.
func TestOutboxOrder(t *testing.T) {
	o := newOutbox(&mqtt.Client{}, 10, 1000, func(func()) bool { return false }, func() {}, nil, nil)
	var a, b atomic.Uint64
	var want []uint64 // ids queued and not dropped, in order
	n := uint64(0)
	push := func(k int) {
		for range k {
			n++
			mark := &a
			if n%3 == 0 {
				mark = &b
			}
			o.pushItem(outItem{pk: &packets.Packet{}, mark: mark, id: n})
			want = append(want, n)
		}
	}
	var got []uint64
	take := func(k int) {
		t.Helper()
		for range k {
			it, ok := o.next(func() { t.Fatal("waited at QoS 0") }, false)
			if !ok {
				t.Fatalf("queue empty after %v", got)
			}
			got = append(got, it.id)
		}
	}
	push(10)
	take(9)
	push(20) // fills the array, whose front half was taken: it is reused
	take(5)
	o.drop(&b)
	waiting := slices.DeleteFunc(want[len(got):], func(id uint64) bool { return id%3 == 0 })
	want = append(want[:len(got)], waiting...)
	push(7)
	take(len(want) - len(got))
	if _, ok := o.next(func() {}, false); ok {
		t.Fatal("queue not empty")
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if a.Load() != want[len(want)-1] && b.Load() != want[len(want)-1] {
		t.Errorf("marks at %d and %d, want the last id %d", a.Load(), b.Load(), want[len(want)-1])
	}
}

// TestOutboxHandsOverUnacked checks that the QoS 1 packets a connection wrote and the client
// did not acknowledge go to the session's next connection in the order they were sent, across
// a wrap of the packet ids, with their ids and the DUP flag, ahead of its new packets, and that
// the next connection gives its new packets other ids.
func TestOutboxHandsOverUnacked(t *testing.T) {
	srv := mqtt.New(nil)
	noSpawn := func(func()) bool { return false }
	first := newOutbox(srv.NewClient(nil, "t", "c", false), 10, 1000, noSpawn, func() {}, nil, nil)
	first.nextID = lastPacketID - 2 // the ids wrap after two packets
	var sent []uint16
	for i := range 5 {
		first.pushItem(outItem{pk: qos1(), id: uint64(i + 1)})
		it, ok := first.next(func() { t.Fatal("waited for quota") }, false)
		if !ok || it.writeQoS() != 1 || it.dup {
			t.Fatalf("took %+v, %v", it, ok)
		}
		sent = append(sent, it.pid)
	}
	first.acked(sent[1])
	first.acked(sent[3])
	unacked := first.takeUnacked()
	if got := ids(unacked); !slices.Equal(got, []uint64{1, 3, 5}) {
		t.Fatalf("handed over %v, want [1 3 5]", got)
	}
	first.acked(sent[0]) // too late: nothing changes
	first.pushItem(outItem{pk: qos1(), id: 6})
	if _, ok := first.next(func() {}, false); ok {
		t.Fatal("the closed outbox still writes")
	}

	second := newOutbox(srv.NewClient(nil, "t", "c", false), 10, 1000, noSpawn, func() {}, nil, nil)
	second.resend(unacked)
	second.pushItem(outItem{pk: qos1(), id: 7})
	want := []struct {
		id  uint64
		pid uint16
		dup bool
	}{{1, sent[0], true}, {3, sent[2], true}, {5, sent[4], true}, {7, 0, false}}
	for _, w := range want {
		it, ok := second.next(func() { t.Fatal("waited for quota") }, false)
		if !ok || it.id != w.id || it.dup != w.dup || (w.pid != 0 && it.pid != w.pid) {
			t.Fatalf("took %+v, want %+v", it, w)
		}
		if w.pid == 0 && slices.Contains(sent, it.pid) && it.pid != sent[1] && it.pid != sent[3] {
			t.Fatalf("new packet got id %d, still in use", it.pid)
		}
		if pk := it.packet(); pk.FixedHeader.Dup != w.dup || pk.PacketID != it.pid {
			t.Fatalf("packet %+v, want DUP %v and id %d", pk.FixedHeader, w.dup, it.pid)
		}
	}
}

func qos1() *packets.Packet {
	return &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}}
}

func ids(items []outItem) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.id
	}
	return out
}

// batchCounter is a connection that records how many packets each batch carried.
type batchCounter struct {
	net.Conn // for its addresses
	mu       sync.Mutex
	pending  int
	batches  chan int // the packets of each batch, when it ends
}

func (c *batchCounter) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.pending++
	c.mu.Unlock()
	return len(b), nil
}

func (c *batchCounter) StartBatch() {}

func (c *batchCounter) EndBatch() error {
	c.mu.Lock()
	n := c.pending
	c.pending = 0
	c.mu.Unlock()
	c.batches <- n
	return nil
}

func (c *batchCounter) Close() error { return nil }

// TestOutboxWriteDelay checks that with a write delay the first packet after a quiet moment
// is written on its own, the room messages that come while the writer waits go out together,
// and any other packet (an RPC answer, an event) ends the wait.
func TestOutboxWriteDelay(t *testing.T) {
	pipe, other := net.Pipe()
	defer func() { _, _ = pipe.Close(), other.Close() }()
	conn := &batchCounter{Conn: pipe, batches: make(chan int, 10)}
	cl := mqtt.New(nil).NewClient(conn, "t", "c", false)
	var wg sync.WaitGroup
	spawn := func(f func()) bool { wg.Go(f); return true }
	o := newOutbox(cl, 10, 1000, spawn, func() {}, nil, nil)
	o.delay = 500 * time.Millisecond // the test pushes the next three well within it
	share := &encodings{pk: packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "t", Payload: []byte("x")}}
	batch := func() int {
		t.Helper()
		select {
		case n := <-conn.batches:
			return n
		case <-time.After(5 * time.Second):
			t.Fatal("no batch written")
			return 0
		}
	}
	o.pushItem(outItem{share: share, id: 1})
	if n := batch(); n != 1 {
		t.Fatalf("first batch has %d packets, want 1", n)
	}
	o.pushItem(outItem{share: share, id: 2})
	select { // the writer waits for more
	case n := <-conn.batches:
		t.Fatalf("a batch of %d packets written during the delay", n)
	case <-time.After(100 * time.Millisecond):
	}
	o.pushItem(outItem{share: share, id: 3})
	o.pushItem(outItem{share: share, id: 4})
	if n := batch(); n != 3 {
		t.Fatalf("second batch has %d packets, want the 3 that came during the delay", n)
	}
	o.close() // ends the wait that follows
	wg.Wait()

	// A packet that is not a room message ends the wait at once.
	o = newOutbox(cl, 10, 1000, spawn, func() {}, nil, nil)
	o.delay = time.Minute
	o.pushItem(outItem{share: share, id: 1})
	if n := batch(); n != 1 {
		t.Fatalf("first batch has %d packets, want 1", n)
	}
	o.pushItem(outItem{share: share, id: 2})
	o.push(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "users/u/replies"})
	if n := batch(); n != 2 {
		t.Fatalf("batch has %d packets, want the room message and the answer", n)
	}
	o.close()
	wg.Wait()

	// Without a delay, the writer ends when the queue is empty.
	o = newOutbox(cl, 10, 1000, spawn, func() {}, nil, nil)
	o.pushItem(outItem{share: share, id: 1})
	if n := batch(); n != 1 {
		t.Fatalf("batch has %d packets, want 1", n)
	}
	wg.Wait()
}

// TestOutboxSkipsMochisIDs checks that a QoS 1 packet does not get a packet id that Mochi's
// inflight map holds: a QoS 2 packet that a resumed session inherited from its previous
// connection.
func TestOutboxSkipsMochisIDs(t *testing.T) {
	cl := mqtt.New(nil).NewClient(nil, "t", "c", false)
	cl.State.Inflight.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, PacketID: firstPacketID})
	o := newOutbox(cl, 10, 1000, func(func()) bool { return false }, func() {}, nil, nil)
	o.pushItem(outItem{pk: qos1(), id: 1})
	it, ok := o.next(func() { t.Fatal("waited for quota") }, false)
	if !ok || it.pid == firstPacketID {
		t.Fatalf("took %+v, %v: want an id other than %d, which Mochi holds", it, ok, firstPacketID)
	}
}
