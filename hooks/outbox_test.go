package hooks

import (
	"slices"
	"sync/atomic"
	"testing"

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
			it, ok := o.next(func() { t.Fatal("waited at QoS 0") })
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
	if _, ok := o.next(func() {}); ok {
		t.Fatal("queue not empty")
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if a.Load() != want[len(want)-1] && b.Load() != want[len(want)-1] {
		t.Errorf("marks at %d and %d, want the last id %d", a.Load(), b.Load(), want[len(want)-1])
	}
}
