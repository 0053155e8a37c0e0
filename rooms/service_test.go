package rooms_test

import (
	"context"
	"errors"
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
