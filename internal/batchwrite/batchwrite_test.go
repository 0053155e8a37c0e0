package batchwrite

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// sends records what a connection's send function got.
type sends struct {
	got  [][]byte
	fail error
}

func (s *sends) send(p []byte) error {
	s.got = append(s.got, bytes.Clone(p))
	return s.fail
}

func TestBatch(t *testing.T) {
	var s sends
	var b Batch
	write := func(p string) {
		t.Helper()
		if n, err := b.Write([]byte(p), s.send); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	write("a") // outside a batch: sent at once
	b.Start()
	write("b")
	write("c")
	if len(s.got) != 1 {
		t.Fatalf("sent %q during the batch", s.got[1:])
	}
	if err := b.End(s.send); err != nil {
		t.Fatal(err)
	}
	if err := b.End(s.send); err != nil { // nothing gathered: nothing sent
		t.Fatal(err)
	}
	b.Start()
	big := bytes.Repeat([]byte{'x'}, Limit)
	write(string(big)) // reaches the limit: sent before End
	if len(s.got) != 3 || len(s.got[2]) != Limit {
		t.Fatalf("a batch of %d bytes was not sent at once", Limit)
	}
	if err := b.End(s.send); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{[]byte("a"), []byte("bc"), big}
	if !slices.EqualFunc(s.got, want, bytes.Equal) {
		t.Errorf("sent %d writes, want a, bc and one of %d bytes", len(s.got), Limit)
	}
}

func TestBatchError(t *testing.T) {
	broken := errors.New("broken pipe")
	s := sends{fail: broken}
	var b Batch
	if _, err := b.Write([]byte("a"), s.send); !errors.Is(err, broken) {
		t.Fatalf("direct write: %v, want the send error", err)
	}
	s.fail = nil
	if _, err := b.Write([]byte("b"), s.send); err != nil {
		t.Fatalf("a failed direct write is not sticky: %v", err)
	}
	b.Start()
	_, _ = b.Write([]byte("c"), s.send)
	s.fail = broken
	if err := b.End(s.send); !errors.Is(err, broken) {
		t.Fatalf("End: %v, want the send error", err)
	}
	s.fail = nil
	if _, err := b.Write([]byte("d"), s.send); !errors.Is(err, broken) {
		t.Fatalf("write after a failed batch: %v, want the batch's error", err)
	}
}
