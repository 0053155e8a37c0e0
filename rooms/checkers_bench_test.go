package rooms_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
)

// benchPayloads are typical room messages per checker.
var benchPayloads = map[string][]byte{
	rooms.CheckerText:   []byte(`{"textMessage":"hello everyone, the meeting moves to 3 pm in room 42"}`),
	rooms.CheckerJSON:   []byte(`{"type":"reading","sensor":"t-17","value":21.5,"unit":"C","tags":["lab","north"]}`),
	rooms.CheckerBinary: make([]byte, 256),
}

// BenchmarkCheckers measures the built-in message checkers on a typical payload.
func BenchmarkCheckers(b *testing.B) {
	for _, name := range []string{rooms.CheckerText, rooms.CheckerJSON, rooms.CheckerBinary} {
		b.Run(name, func(b *testing.B) {
			c := builtinChecker(b, name)
			payload := benchPayloads[name]
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, _, err := c.Check(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNewMessage measures the enrichment of a stored message for delivery: id, author and
// timestamp added to a JSON object, or the {"binary": base64} form of a binary message.
func BenchmarkNewMessage(b *testing.B) {
	for _, name := range []string{rooms.CheckerText, rooms.CheckerBinary} {
		b.Run(name, func(b *testing.B) {
			content, binary, err := builtinChecker(b, name).Check(benchPayloads[name])
			if err != nil {
				b.Fatal(err)
			}
			m := store.Message{ID: 123456, Author: "alice", Timestamp: 1732300000000, Binary: binary, Payload: content}
			b.ReportAllocs()
			for b.Loop() {
				if msg := rooms.NewMessage("general", "epoch-1", "client-1", m); len(msg.Payload()) == 0 {
					b.Fatal("empty payload")
				}
			}
		})
	}
}

// countingSubscriber counts the messages delivered to it.
type countingSubscriber struct {
	key string
	n   *atomic.Int64
}

func (s countingSubscriber) Key() string                { return s.key }
func (s countingSubscriber) DeliverRoom(*rooms.Message) { s.n.Add(1) }
func (s countingSubscriber) RoomRemoved(string)         {}

// BenchmarkPost measures Post on the memory store: check, append to the history with the next
// id, enrich and hand to the room's subscribers on this instance (no network).
func BenchmarkPost(b *testing.B) {
	for _, subs := range []int{0, 1, 100} {
		b.Run(fmt.Sprintf("text/subscribers=%d", subs), func(b *testing.B) {
			ctx := context.Background()
			st := store.NewMemory()
			defer st.Close()
			svc, err := rooms.New(rooms.Options{Store: st, Notifier: nopNotifier{}})
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			if err := svc.Create(ctx, store.Room{Name: "bench", Owner: "admin", Checker: rooms.CheckerText}); err != nil {
				b.Fatal(err)
			}
			var delivered atomic.Int64
			for i := range subs {
				id := fmt.Sprintf("c%d", i)
				sub := countingSubscriber{key: id, n: &delivered}
				if _, err := svc.Join(ctx, rooms.Join{Room: "bench", User: "u" + id, ClientID: id, Subscriber: sub}); err != nil {
					b.Fatal(err)
				}
			}
			payload := benchPayloads[rooms.CheckerText]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := svc.Post(ctx, "bench", "alice", "client-1", payload); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if want := int64(b.N * subs); delivered.Load() < want {
				b.Fatalf("delivered %d, want %d", delivered.Load(), want)
			}
		})
	}
}

// BenchmarkHistoryAnswer measures the JSON array of a history read of 100 binary messages of
// 64 bytes, as roomHistoryGet answers it: from wrapped messages (NewMessage per message, as
// before MessageList) and from the stored messages in one buffer (MessageList).
func BenchmarkHistoryAnswer(b *testing.B) {
	msgs := make([]store.Message, 100)
	for i := range msgs {
		msgs[i] = store.Message{ID: uint64(i + 1), Author: "bench-prefill", Timestamp: 1732300000000, Binary: true, Payload: make([]byte, 64)}
	}
	b.Run("wrapped", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out := []byte{'['}
			for i, m := range msgs {
				if i > 0 {
					out = append(out, ',')
				}
				out = append(out, rooms.NewMessage("general", "epoch-1", "", m).JSON()...)
			}
			if len(append(out, ']')) < 100 {
				b.Fatal("short answer")
			}
		}
	})
	b.Run("list", func(b *testing.B) {
		b.ReportAllocs()
		l := rooms.MessageList(msgs)
		for b.Loop() {
			if len(l.AppendJSON(make([]byte, 0, l.JSONSizeHint()))) < 100 {
				b.Fatal("short answer")
			}
		}
	})
}
