package rooms_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

type nopNotifier struct{}

func (nopNotifier) RoomEvent(string, wire.Event) {}
func (nopNotifier) UserEvent(string, wire.Event) {}
func (nopNotifier) UserRemoved(string, string)   {}

// A custom checker's plain error is a refusal; its panic is an internal error, and the
// service keeps working.
func TestCustomCheckerErrorsAndPanics(t *testing.T) {
	checkers := rooms.NewCheckers()
	if err := checkers.Register("picky", rooms.CheckerFunc(func(p []byte) ([]byte, bool, error) {
		switch string(p) {
		case "panic":
			panic("boom")
		case "ok":
			return []byte(`{}`), false, nil
		}
		return nil, false, errors.New("not ok")
	})); err != nil {
		t.Fatal(err)
	}
	s, err := rooms.New(rooms.Options{Store: store.NewMemory(), Checkers: checkers, Notifier: nopNotifier{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Create(ctx, store.Room{Name: "r", Owner: "o", Checker: "picky"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Post(ctx, "r", "u", "", []byte("nope")); wire.CodeOf(err) != wire.CodeBadMessage {
		t.Errorf("plain error: %v, want badMessage", err)
	}
	if _, err := s.Post(ctx, "r", "u", "", []byte("panic")); wire.CodeOf(err) != wire.CodeInternalError {
		t.Errorf("panic: %v, want internalError", err)
	}
	m, err := s.Post(ctx, "r", "u", "", []byte("ok"))
	if err != nil || m.ID != 1 {
		t.Fatalf("after a panic: %+v, %v; want id 1", m, err)
	}
}

// rangeOnly hides the memory store's ViewRange, as a store without one.
type rangeOnly struct{ store.Store }

// HistoryJSON and RecentJSON answer the JSON forms of the messages History and Recent return,
// from a store that shows ranges in place and from one that does not.
func TestHistoryJSON(t *testing.T) {
	for name, st := range map[string]store.Store{"viewer": store.NewMemory(), "range only": rangeOnly{store.NewMemory()}} {
		t.Run(name, func(t *testing.T) {
			s, err := rooms.New(rooms.Options{Store: st, Checkers: rooms.NewCheckers(), Notifier: nopNotifier{}, HistoryMaxGetMessages: 4})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := s.Create(ctx, store.Room{Name: "r", Owner: "o", Checker: rooms.CheckerBinary}); err != nil {
				t.Fatal(err)
			}
			for i := range 6 {
				if _, err := s.Post(ctx, "r", "u<1>", "", []byte{byte(i), '"'}); err != nil {
					t.Fatal(err)
				}
			}
			wantJSON := func(msgs []*rooms.Message) string {
				out := "["
				for i, m := range msgs {
					if i > 0 {
						out += ","
					}
					out += string(m.JSON())
				}
				return out + "]"
			}
			for _, tc := range []struct {
				after uint64
				limit int
			}{{0, 0}, {0, 2}, {1, 100}, {5, 3}, {6, 3}} {
				msgs, err := s.History(ctx, "r", tc.after, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.HistoryJSON(ctx, "r", tc.after, tc.limit)
				if err != nil || string(got) != wantJSON(msgs) {
					t.Errorf("HistoryJSON(%d, %d) = %s, %v; want %s", tc.after, tc.limit, got, err, wantJSON(msgs))
				}
			}
			recent, err := s.Recent(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.RecentJSON(ctx, "r"); err != nil || string(got) != wantJSON(recent) {
				t.Errorf("RecentJSON = %s, %v; want %s", got, err, wantJSON(recent))
			}
			if _, err := s.HistoryJSON(ctx, "missing", 0, 1); !errors.Is(err, store.ErrNoRoom) {
				t.Errorf("HistoryJSON of a missing room: %v, want ErrNoRoom", err)
			}
		})
	}
}

// Posts queued one after the other are stored in that order, whichever of their waits runs
// first, and a refused one takes no id.
func TestEnqueueKeepsOrder(t *testing.T) {
	ctx := context.Background()
	s, err := rooms.New(rooms.Options{Store: store.NewMemory(), Checkers: rooms.NewCheckers(), Notifier: nopNotifier{}})
	if err != nil {
		t.Fatal(err)
	}
	r := store.Room{Name: "r", Owner: "o", Checker: rooms.CheckerText}
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	var waits []func(context.Context) (*rooms.Message, error)
	for i := range 5 {
		w, err := s.EnqueueBridged(r, "a", "c", []byte(fmt.Sprintf(`{"textMessage":"m%d"}`, i)), wire.Origin{})
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	if _, err := s.EnqueueBridged(r, "a", "c", []byte("not json"), wire.Origin{}); err == nil {
		t.Fatal("a payload the text checker refuses was queued")
	}
	ids := make([]uint64, len(waits))
	var wg sync.WaitGroup
	for i := len(waits) - 1; i >= 0; i-- { // the last queued waits first
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := waits[i](ctx)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = m.ID
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if id != uint64(i+1) {
			t.Fatalf("ids %v, want 1 to %d in queue order", ids, len(ids))
		}
	}
}
