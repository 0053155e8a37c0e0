// Package batchwrite gathers a connection's writes into batches: between Start and End, writes
// are kept and sent together, in one call of the connection's send function (one system call,
// or one WebSocket message) where one per write would be made. The broker's outbox starts a
// batch before it writes the packets it has queued for a connection and ends it when the
// queue is empty; every other write goes straight through, or into the current batch, in
// order.
package batchwrite

// Limit is how many bytes a batch gathers before they are sent anyway.
const Limit = 32 << 10

// Batch is the batching state of one connection. It does no locking: the connection holds its
// write lock around every call, and send is called under it.
type Batch struct {
	batching bool
	buf      []byte
	err      error // the first error of a gathered write: every later write fails with it
}

// Write sends p with send, or adds it to the current batch (sending what was gathered once it
// reaches Limit). It returns len(p) and the first error of the batch, or send's error.
func (b *Batch) Write(p []byte, send func([]byte) error) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if !b.batching {
		if err := send(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= Limit {
		b.flush(send)
	}
	return len(p), b.err
}

// Start gathers the following writes.
func (b *Batch) Start() { b.batching = true }

// End sends what was gathered and returns the first error of the batch.
func (b *Batch) End(send func([]byte) error) error {
	b.batching = false
	b.flush(send)
	return b.err
}

// flush sends the gathered bytes, unless a gathered write failed before.
func (b *Batch) flush(send func([]byte) error) {
	if len(b.buf) > 0 && b.err == nil {
		b.err = send(b.buf)
	}
	if cap(b.buf) > 2*Limit {
		b.buf = nil
	} else {
		b.buf = b.buf[:0]
	}
}
