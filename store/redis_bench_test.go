package store_test

import (
	"testing"

	"github.com/roomq/roomq/internal/redistest"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/store/storetest"
)

func BenchmarkRedisAppend(b *testing.B) {
	storetest.BenchAppend(b, benchRedisStore(b))
}

func BenchmarkRedisRange100(b *testing.B) {
	storetest.BenchRange(b, benchRedisStore(b), 100)
}

// benchRedisStore returns a store on a new single Redis server, closed when b ends.
func benchRedisStore(b *testing.B) *store.Redis {
	s := newRedisStore(b, urls(redistest.Standalone(b))...)
	b.Cleanup(func() { _ = s.Close() })
	return s
}
