package store_test

import (
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
