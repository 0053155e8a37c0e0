package store_test

import (
	"context"
	"testing"

	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/store/storetest"
)

func BenchmarkMemoryAppend(b *testing.B) {
	storetest.BenchAppend(b, store.NewMemory())
}

func BenchmarkMemoryRange100(b *testing.B) {
	storetest.BenchRange(b, store.NewMemory(), 100)
}

// BenchmarkMemoryViewRange100 is BenchmarkMemoryRange100 with ViewRange: the messages shown in
// place instead of copied out.
func BenchmarkMemoryViewRange100(b *testing.B) {
	ctx := context.Background()
	s := store.NewMemory()
	if err := s.CreateRoom(ctx, store.Room{Name: "bench", Owner: "bench"}); err != nil {
		b.Fatal(err)
	}
	const size = 10000
	for range size {
		if _, err := s.Append(ctx, "bench", store.Message{Author: "bench", Timestamp: 1, Payload: []byte(`{"textMessage":"the quick brown fox jumps over the lazy dog.."}`)}, size); err != nil {
			b.Fatal(err)
		}
	}
	var after uint64
	b.ReportAllocs()
	for b.Loop() {
		err := s.ViewRange(ctx, "bench", after, 100, func(msgs []store.Message) error {
			if len(msgs) != 100 {
				b.Fatalf("ViewRange(%d, 100) showed %d messages", after, len(msgs))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		after = (after + 7919) % (size - 100)
	}
}
