package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/roomq/roomq/store"
)

// testBroadcast: every subscriber gets every payload broadcast after it subscribed, once and in
// the order of the broadcasts; a cancelled subscription gets nothing more.
func testBroadcast(t *testing.T, s store.Store) {
	got1 := make(chan string, 100)
	got2 := make(chan string, 100)
	cancel1, err := s.SubscribeBroadcast(ctx(t), func(p []byte) { got1 <- string(p) })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel1()
	cancel2, err := s.SubscribeBroadcast(ctx(t), func(p []byte) { got2 <- string(p) })
	if err != nil {
		t.Fatal(err)
	}
	// Enough of them to catch a store that spreads them over paths that reorder them.
	sent := make([]string, 30)
	for i := range sent {
		sent[i] = fmt.Sprintf("message %d", i)
		if err := s.Broadcast(ctx(t), []byte(sent[i])); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(ch chan string, want string) {
		t.Helper()
		select {
		case got := <-ch:
			if got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		case <-time.After(callTimeout):
			t.Fatalf("no broadcast %q", want)
		}
	}
	for _, ch := range []chan string{got1, got2} {
		for _, want := range sent {
			expect(ch, want)
		}
	}
	cancel2()
	cancel2() // twice is fine
	if err := s.Broadcast(ctx(t), []byte("three")); err != nil {
		t.Fatal(err)
	}
	expect(got1, "three") // the live subscription got it, so the cancelled one would have too
	select {
	case p := <-got2:
		t.Fatalf("cancelled subscription got %q", p)
	default:
	}
}
