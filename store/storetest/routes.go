package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/roomq/roomq/store"
)

func checkRoutes(t *testing.T, s store.Store, want map[string][]string) {
	t.Helper()
	got, err := s.Routes(ctx(t))
	if err != nil {
		t.Fatalf("Routes: %v", err)
	}
	for inst, filters := range got {
		if len(filters) == 0 {
			got[inst] = nil
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Routes = %v, want %v", got, want)
	}
}

// testRoutes: the routes of the instances with a heartbeat; SetRoutes replaces them; an
// instance that is removed loses its routes.
func testRoutes(t *testing.T, s store.Store) {
	checkRoutes(t, s, map[string][]string{})
	heartbeat(t, s, "a", longTTL, false)
	heartbeat(t, s, "b", longTTL, false)
	for _, f := range []string{"devices/+/status", "devices/#", "devices/+/status"} {
		if err := s.AddRoute(ctx(t), "a", f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddRoute(ctx(t), "ghost", "x"); err != nil { // no heartbeat: not listed
		t.Fatal(err)
	}
	checkRoutes(t, s, map[string][]string{"a": {"devices/#", "devices/+/status"}, "b": nil})
	if err := s.SetRoutes(ctx(t), "a", []string{"t/1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRoutes(ctx(t), "b", []string{"t/2", "t/3"}); err != nil {
		t.Fatal(err)
	}
	checkRoutes(t, s, map[string][]string{"a": {"t/1"}, "b": {"t/2", "t/3"}})
	if err := s.SetRoutes(ctx(t), "b", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveInstance(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	heartbeat(t, s, "a", longTTL, false)
	checkRoutes(t, s, map[string][]string{"a": nil, "b": nil})
}

// testMailbox: what is sent to an instance reaches its mailbox's subscribers in order, and no
// other instance's.
func testMailbox(t *testing.T, s store.Store) {
	got := make(chan string, 100)
	other := make(chan string, 100)
	cancel, err := s.SubscribeMailbox(ctx(t), "a", func(p []byte) { got <- string(p) })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	cancelOther, err := s.SubscribeMailbox(ctx(t), "b", func(p []byte) { other <- string(p) })
	if err != nil {
		t.Fatal(err)
	}
	defer cancelOther()
	for i := range 20 {
		if err := s.SendTo(ctx(t), "a", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SendTo(ctx(t), "b", []byte("for b")); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		select {
		case p := <-got:
			if want := fmt.Sprintf("m%d", i); p != want {
				t.Fatalf("mailbox a got %q, want %q", p, want)
			}
		case <-time.After(callTimeout):
			t.Fatalf("mailbox a: no message %d", i)
		}
	}
	select {
	case p := <-other:
		if p != "for b" {
			t.Fatalf("mailbox b got %q", p)
		}
	case <-time.After(callTimeout):
		t.Fatal("mailbox b got nothing")
	}
	select {
	case p := <-got:
		t.Fatalf("mailbox a got %q, sent to b", p)
	default:
	}
}

// testRetained: retained messages are stored, replaced and removed, each change with a higher
// version.
func testRetained(t *testing.T, s store.Store) {
	var last uint64
	set := func(topic string, message []byte) {
		t.Helper()
		v, err := s.SetRetained(ctx(t), topic, message)
		if err != nil {
			t.Fatalf("SetRetained(%s): %v", topic, err)
		}
		if v <= last {
			t.Fatalf("SetRetained(%s) = version %d after %d", topic, v, last)
		}
		last = v
	}
	check := func(want map[string]string) {
		t.Helper()
		got, err := s.RetainedMessages(ctx(t))
		if err != nil {
			t.Fatalf("RetainedMessages: %v", err)
		}
		m := make(map[string]string)
		for _, rm := range got {
			m[rm.Topic] = string(rm.Message)
			if rm.Version == 0 || rm.Version > last {
				t.Fatalf("RetainedMessages: %s has version %d (last %d)", rm.Topic, rm.Version, last)
			}
		}
		if len(m) != len(want) || (len(want) > 0 && !reflect.DeepEqual(m, want)) {
			t.Fatalf("RetainedMessages = %v, want %v", m, want)
		}
	}
	check(map[string]string{})
	set("a/b", []byte(`{"p":"one two"}`))
	set("c", []byte{})
	check(map[string]string{"a/b": `{"p":"one two"}`, "c": ""})
	set("a/b", []byte("v2"))
	set("c", nil)
	set("never", nil)
	check(map[string]string{"a/b": "v2"})
}

// testReplies: a right to reply is spent once, per topic and client; expired rights are not.
func testReplies(t *testing.T, s store.Store) {
	use := func(clientID, topic string, want bool) {
		t.Helper()
		ok, err := s.UseReply(ctx(t), clientID, topic)
		if err != nil || ok != want {
			t.Fatalf("UseReply(%s, %s) = %v, %v; want %v", clientID, topic, ok, err, want)
		}
	}
	grant := func(clientID, topic string, ttl time.Duration) {
		t.Helper()
		if err := s.GrantReply(ctx(t), clientID, topic, ttl); err != nil {
			t.Fatalf("GrantReply: %v", err)
		}
	}
	const topic = "users/alice/replies/c1"
	use("dev", topic, false)
	grant("dev", topic, longTTL)
	grant("dev", topic, longTTL)
	use("other", topic, false)
	use("dev", "users/alice/replies/c2", false)
	use("dev", topic, true)
	use("dev", topic, true)
	use("dev", topic, false)

	grant("dev", topic, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // the right expires: this waits for time, not for an event
	use("dev", topic, false)
}

// testAppendBatch: a batch gets the next ids in order and is trimmed like single appends; a
// batch to a missing room stores nothing.
func testAppendBatch(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	if _, err := s.Append(ctx(t), "r", store.Message{Author: "a", Payload: []byte(`{"n":0}`)}, 4); err != nil {
		t.Fatal(err)
	}
	batch := make([]store.Message, 5)
	for i := range batch {
		batch[i] = store.Message{Author: "b", Timestamp: int64(i), Payload: fmt.Appendf(nil, `{"n":%d}`, i+1)}
	}
	stored, err := s.AppendBatch(ctx(t), "r", batch, 4)
	if err != nil || len(stored) != len(batch) {
		t.Fatalf("AppendBatch = %d messages, %v", len(stored), err)
	}
	for i, m := range stored {
		if m.ID != uint64(i+2) || string(m.Payload) != string(batch[i].Payload) || m.Author != "b" {
			t.Fatalf("stored[%d] = %+v", i, m)
		}
	}
	got, err := s.Range(ctx(t), "r", 0, 10)
	if err != nil || len(got) != 4 || got[0].ID != 3 || got[3].ID != 6 || string(got[3].Payload) != `{"n":5}` {
		t.Fatalf("Range after the batch = %+v, %v; want ids 3..6 (trimmed to 4)", got, err)
	}
	stored, err = s.AppendBatch(ctx(t), "missing", batch, 4)
	if !errors.Is(err, store.ErrNoRoom) || len(stored) != 0 {
		t.Fatalf("AppendBatch to a missing room = %d, %v; want ErrNoRoom", len(stored), err)
	}
}
