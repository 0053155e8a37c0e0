package store_test

import (
	"testing"

	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/store/storetest"
)

func BenchmarkMemoryAppendSubscribed(b *testing.B) {
	storetest.BenchAppendSubscribed(b, store.NewMemory())
}

func BenchmarkRedisAppendSubscribed(b *testing.B) {
	storetest.BenchAppendSubscribed(b, benchRedisStore(b))
}
