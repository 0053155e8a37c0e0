package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
}

func TestMemoryMaxSizeBelowOne(t *testing.T) {
	ctx := context.Background()
	s := store.NewMemory()
	if err := s.CreateRoom(ctx, store.Room{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	for i, maxSize := range []int{0, -5, 0} {
		m, err := s.Append(ctx, "r", store.Message{Payload: []byte("x")}, maxSize)
		if err != nil || m.ID != uint64(i+1) {
			t.Fatalf("Append(maxSize %d) = id %d, %v; want id %d", maxSize, m.ID, err, i+1)
		}
	}
	info, err := s.HistoryInfo(ctx, "r")
	if err != nil || info.Size != 1 || info.FirstID != 3 || info.LastID != 3 {
		t.Fatalf("HistoryInfo = %+v, %v; want one message, id 3", info, err)
	}
}

// TestMemoryRingWrap drives the ring through growth, wrap-around and shrinking with sizes
// that are not powers of two, and checks every id window against a plain slice.
func TestMemoryRingWrap(t *testing.T) {
	ctx := context.Background()
	s := store.NewMemory()
	if err := s.CreateRoom(ctx, store.Room{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for step, maxSize := range []int{7, 100, 33, 200, 3, 150, 1, 65} {
		for range 2*maxSize + step {
			m, err := s.Append(ctx, "r", store.Message{}, maxSize)
			if err != nil {
				t.Fatal(err)
			}
			last = m.ID
		}
		first := last - uint64(maxSize) + 1
		for after := first - 2; after <= last; after++ {
			msgs, err := s.Range(ctx, "r", after, 10)
			if err != nil {
				t.Fatal(err)
			}
			want := max(after+1, first)
			for _, m := range msgs {
				if m.ID != want {
					t.Fatalf("maxSize %d: Range(%d) returned id %d, want %d", maxSize, after, m.ID, want)
				}
				want++
			}
			if n := min(10, last-max(after+1, first)+1); after < last && uint64(len(msgs)) != n {
				t.Fatalf("maxSize %d: Range(%d) returned %d messages, want %d", maxSize, after, len(msgs), n)
			}
		}
	}
}

func TestMemoryErrorsWrapSentinels(t *testing.T) {
	ctx := context.Background()
	s := store.NewMemory()
	_, err := s.Append(ctx, "missing", store.Message{}, 10)
	if !errors.Is(err, store.ErrNoRoom) || err.Error() == store.ErrNoRoom.Error() {
		t.Fatalf("Append error %q should wrap ErrNoRoom with context", err)
	}
	if err := s.CreateRoom(ctx, store.Room{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRoom(ctx, store.Room{Name: "r"}); !errors.Is(err, store.ErrRoomExists) {
		t.Fatalf("CreateRoom twice: %v", err)
	}
}

func TestMemoryCloseIdempotent(t *testing.T) {
	s := store.NewMemory()
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after Close: %v", err)
	}
}

// ViewRange shows the messages Range returns, through wrap-around and eviction, returns the
// view's error and ErrNoRoom.
func TestMemoryViewRange(t *testing.T) {
	ctx := context.Background()
	s := store.NewMemory()
	if err := s.CreateRoom(ctx, store.Room{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := s.Append(ctx, "r", store.Message{Author: "a", Payload: []byte{byte(i)}}, 17); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		after uint64
		limit int
	}{{0, 100}, {0, 5}, {33, 3}, {40, 10}, {49, 10}, {50, 10}, {60, 10}, {20, 0}, {20, -1}} {
		want, err := s.Range(ctx, "r", tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		err = s.ViewRange(ctx, "r", tc.after, tc.limit, func(got []store.Message) error {
			calls++
			if len(got) != len(want) {
				t.Fatalf("ViewRange(%d, %d) shows %d messages, Range returns %d", tc.after, tc.limit, len(got), len(want))
			}
			for i := range got {
				if got[i].ID != want[i].ID || got[i].Author != want[i].Author || !bytes.Equal(got[i].Payload, want[i].Payload) {
					t.Errorf("ViewRange(%d, %d)[%d] = %+v, Range has %+v", tc.after, tc.limit, i, got[i], want[i])
				}
			}
			return nil
		})
		if err != nil || calls != 1 {
			t.Fatalf("ViewRange(%d, %d) = %v after %d calls of view, want nil after 1", tc.after, tc.limit, err, calls)
		}
	}
	viewErr := errors.New("view failed")
	if err := s.ViewRange(ctx, "r", 0, 10, func([]store.Message) error { return viewErr }); err != viewErr {
		t.Errorf("ViewRange returned %v, want the view's error", err)
	}
	if err := s.ViewRange(ctx, "missing", 0, 10, func([]store.Message) error {
		t.Error("view called for a missing room")
		return nil
	}); !errors.Is(err, store.ErrNoRoom) {
		t.Errorf("ViewRange of a missing room = %v, want ErrNoRoom", err)
	}
}
