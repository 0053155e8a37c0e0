package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomq/roomq/store"
)

// feedWait bounds every wait for a delivery.
const feedWait = 30 * time.Second

// delivery is one call of a deliver function.
type delivery struct {
	m     store.Message
	epoch string
}

// recorder records the calls of its deliver function.
type recorder struct {
	t      *testing.T
	name   string
	busy   atomic.Bool
	notify chan struct{} // signalled after each delivery

	mu  sync.Mutex
	got []delivery
}

func newRecorder(t *testing.T, name string) *recorder {
	return &recorder{t: t, name: name, notify: make(chan struct{}, 1)}
}

// deliver records a delivery, and fails the test if it overlaps another.
func (r *recorder) deliver(m store.Message, epoch string) {
	if !r.busy.CompareAndSwap(false, true) {
		r.t.Errorf("%s: deliver called while another call was running", r.name)
	}
	r.mu.Lock()
	r.got = append(r.got, delivery{m, epoch})
	r.mu.Unlock()
	r.busy.Store(false)
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// deliveries returns a copy of the deliveries so far.
func (r *recorder) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor waits until done holds for the deliveries so far, and fails the test when it does
// not within feedWait.
func (r *recorder) waitFor(what string, done func([]delivery) bool) []delivery {
	r.t.Helper()
	deadline := time.NewTimer(feedWait)
	defer deadline.Stop()
	for {
		got := r.deliveries()
		if done(got) {
			return got
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			r.t.Fatalf("%s: waiting %v for %s; got ids %v", r.name, feedWait, what, deliveredIDs(got))
		}
	}
}

// waitForID waits for the delivery of message id and returns the deliveries so far.
func (r *recorder) waitForID(id uint64) []delivery {
	r.t.Helper()
	return r.waitFor(fmt.Sprintf("message %d", id), func(got []delivery) bool {
		return slices.ContainsFunc(got, func(d delivery) bool { return d.m.ID == id })
	})
}

func deliveredIDs(ds []delivery) []uint64 {
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.m.ID
	}
	return out
}

// subscribe subscribes r to room and cancels the subscription when the test ends.
func subscribe(t *testing.T, s store.Store, room string, r *recorder) (cancel func()) {
	t.Helper()
	cancel, err := s.SubscribeRoom(ctx(t), room, r.deliver)
	if err != nil {
		t.Fatalf("SubscribeRoom(%q): %v", room, err)
	}
	t.Cleanup(cancel)
	return cancel
}

func appendOne(t *testing.T, s store.Store, room string, m store.Message) store.Message {
	t.Helper()
	out, err := s.Append(ctx(t), room, m, 1000)
	if err != nil {
		t.Fatalf("Append(%q): %v", room, err)
	}
	return out
}

// checkDeliveries checks that got holds each message of want exactly once, equal to it, with
// epoch, and nothing else.
func checkDeliveries(t *testing.T, name string, got []delivery, want map[uint64]store.Message, epoch string) {
	t.Helper()
	seen := make(map[uint64]bool, len(got))
	for _, d := range got {
		w, ok := want[d.m.ID]
		switch {
		case !ok:
			t.Errorf("%s: delivered message %d, which was not appended to its room", name, d.m.ID)
		case seen[d.m.ID]:
			t.Errorf("%s: delivered message %d twice", name, d.m.ID)
		case d.epoch != epoch:
			t.Errorf("%s: message %d delivered with epoch %q, want %q", name, d.m.ID, d.epoch, epoch)
		case d.m.Author != w.Author || d.m.Timestamp != w.Timestamp || d.m.Binary != w.Binary ||
			!bytes.Equal(d.m.Payload, w.Payload):
			t.Errorf("%s: delivered %+v, appended %+v", name, d.m, w)
		}
		seen[d.m.ID] = true
	}
	if len(seen) != len(want) {
		t.Errorf("%s: delivered %d distinct messages, want %d", name, len(seen), len(want))
	}
}

// testFeedDelivery appends messages from several goroutines to a room with two subscriptions,
// and checks that each subscription gets every message once, with the room's epoch, and that a
// subscription of another room gets none of them.
func testFeedDelivery(t *testing.T, s store.Store) {
	const writers, each = 4, 50
	createRoom(t, s, "r")
	createRoom(t, s, "other")
	info := checkInfo(t, s, "r", 0, 0, 0)
	a, b, other := newRecorder(t, "subscription A"), newRecorder(t, "subscription B"), newRecorder(t, "other room")
	subscribe(t, s, "r", a)
	subscribe(t, s, "r", b)
	subscribe(t, s, "other", other)

	c := ctx(t)
	var mu sync.Mutex
	want := make(map[uint64]store.Message)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m := message(w*each + i)
				if i%5 == 0 {
					m.Binary, m.Payload = true, []byte{0, byte(i), 0xff}
				}
				out, err := s.Append(c, "r", m, writers*each)
				if err != nil {
					errs <- fmt.Errorf("writer %d: Append: %w", w, err)
					return
				}
				mu.Lock()
				want[out.ID] = out
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for _, r := range []*recorder{a, b} {
		got := r.waitFor(fmt.Sprintf("%d messages", len(want)), func(got []delivery) bool {
			ids := make(map[uint64]bool)
			for _, d := range got {
				ids[d.m.ID] = true
			}
			return len(ids) >= len(want)
		})
		checkDeliveries(t, r.name, got, want, info.Epoch)
	}

	// A message on the other room, appended after all of r's, arrives there alone.
	otherInfo := checkInfo(t, s, "other", 0, 0, 0)
	m := appendOne(t, s, "other", store.Message{Author: "x", Timestamp: 7, Payload: []byte(`{"other":1}`)})
	got := other.waitForID(m.ID)
	checkDeliveries(t, other.name, got, map[uint64]store.Message{m.ID: m}, otherInfo.Epoch)
}

// testFeedCancel checks that a cancelled subscription gets nothing more, that cancel may be
// called twice, and that the other subscriptions of the room go on.
func testFeedCancel(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	a, b := newRecorder(t, "cancelled subscription"), newRecorder(t, "remaining subscription")
	cancelA := subscribe(t, s, "r", a)
	subscribe(t, s, "r", b)

	m1 := appendOne(t, s, "r", message(1))
	a.waitForID(m1.ID)
	b.waitForID(m1.ID)

	cancelA()
	cancelA()
	m2 := appendOne(t, s, "r", message(2))
	b.waitForID(m2.ID)
	if got := a.deliveries(); len(got) != 1 || got[0].m.ID != m1.ID {
		t.Fatalf("%s got ids %v, want [%d]", a.name, deliveredIDs(got), m1.ID)
	}
}

// testFeedCancelWaits checks that cancel returns only after a running deliver has returned.
func testFeedCancelWaits(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var returned atomic.Bool
	cancel, err := s.SubscribeRoom(ctx(t), "r", func(store.Message, string) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		returned.Store(true)
	})
	if err != nil {
		t.Fatalf("SubscribeRoom: %v", err)
	}
	released := false
	defer func() {
		if !released {
			close(release)
		}
		cancel()
	}()

	appendOne(t, s, "r", message(1))
	select {
	case <-entered:
	case <-time.After(feedWait):
		t.Fatalf("no delivery within %v", feedWait)
	}
	calling := make(chan struct{})
	cancelled := make(chan bool)
	go func() {
		close(calling)
		cancel()
		cancelled <- returned.Load()
	}()
	<-calling
	close(release)
	released = true
	select {
	case ok := <-cancelled:
		if !ok {
			t.Fatal("cancel returned while deliver was running")
		}
	case <-time.After(feedWait):
		t.Fatalf("cancel did not return within %v after deliver did", feedWait)
	}
}

// testFeedEpoch subscribes to a room before it exists, and checks that the messages of each
// life of the room come with that life's epoch.
func testFeedEpoch(t *testing.T, s store.Store) {
	r := newRecorder(t, "subscription")
	subscribe(t, s, "r", r)
	var epochs []string
	var want []store.Message
	for life := range 2 {
		if life > 0 {
			if err := s.DeleteRoom(ctx(t), "r"); err != nil {
				t.Fatalf("DeleteRoom: %v", err)
			}
		}
		createRoom(t, s, "r")
		epochs = append(epochs, checkInfo(t, s, "r", 0, 0, 0).Epoch)
		for i := range 2 {
			want = append(want, appendOne(t, s, "r", message(10*life+i)))
		}
	}
	if epochs[0] == epochs[1] {
		t.Fatalf("the room has epoch %q in both lives", epochs[0])
	}
	got := r.waitFor("4 messages", func(got []delivery) bool { return len(got) >= len(want) })
	for i, d := range got {
		if d.m.ID != want[i].ID || !bytes.Equal(d.m.Payload, want[i].Payload) || d.epoch != epochs[i/2] {
			t.Errorf("delivery %d: id %d, payload %s, epoch %q; want id %d, payload %s, epoch %q",
				i, d.m.ID, d.m.Payload, d.epoch, want[i].ID, want[i].Payload, epochs[i/2])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d deliveries, want %d", len(got), len(want))
	}
}

// BenchAppendSubscribed measures Append like BenchAppend while a feed subscription of the
// room receives every message, and waits at the end until it has received them all. s must be
// empty.
func BenchAppendSubscribed(b *testing.B, s store.Store) {
	ctx := context.Background()
	if err := s.CreateRoom(ctx, store.Room{Name: "bench", Owner: "bench"}); err != nil {
		b.Fatalf("CreateRoom: %v", err)
	}
	var received atomic.Uint64
	arrived := make(chan struct{}, 1)
	cancel, err := s.SubscribeRoom(ctx, "bench", func(m store.Message, _ string) {
		received.Store(m.ID)
		select {
		case arrived <- struct{}{}:
		default:
		}
	})
	if err != nil {
		b.Fatalf("SubscribeRoom: %v", err)
	}
	defer cancel()
	m := benchMessage()
	var last uint64
	b.ReportAllocs()
	for b.Loop() {
		out, err := s.Append(ctx, "bench", m, benchHistorySize)
		if err != nil {
			b.Fatalf("Append: %v", err)
		}
		last = out.ID
	}
	deadline := time.NewTimer(feedWait)
	defer deadline.Stop()
	for received.Load() < last {
		select {
		case <-arrived:
		case <-deadline.C:
			b.Fatalf("the subscription received up to id %d of %d", received.Load(), last)
		}
	}
}
