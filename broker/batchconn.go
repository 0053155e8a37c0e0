package broker

import (
	"net"
	"sync"
	"time"
)

// batchWriteLimit is how many bytes a batch holds before it is written anyway.
const batchWriteLimit = 32 << 10

// batchListener accepts connections that can gather writes into batches.
type batchListener struct{ net.Listener }

// Accept implements net.Listener.
func (l batchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &batchConn{Conn: c}, nil
}

// batchConn is a connection whose writes can be gathered: between StartBatch and EndBatch,
// writes are kept (up to batchWriteLimit bytes) and written together, in one system call
// where one would be made per packet. The router's outbox batches the packets it writes in a
// row; every other write goes straight through, or into the current batch, in order.
type batchConn struct {
	net.Conn

	mu       sync.Mutex // held while writing to Conn
	batching bool
	buf      []byte
	err      error // the first error of a batched write
}

// Write implements net.Conn.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if !c.batching {
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= batchWriteLimit {
		c.flushLocked()
	}
	return len(p), c.err
}

// StartBatch gathers the following writes.
func (c *batchConn) StartBatch() {
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
}

// closeFlushTimeout bounds how long Close tries to write what a batch gathered.
const closeFlushTimeout = 500 * time.Millisecond

// Close writes what the current batch gathered (a DISCONNECT written during an outbox's
// batch, for example), then closes the connection. The write gets closeFlushTimeout at most,
// and so does a write in progress that holds the connection: a peer that stopped reading
// cannot hold Close.
func (c *batchConn) Close() error {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	c.mu.Lock()
	c.batching = false
	c.flushLocked()
	c.mu.Unlock()
	return c.Conn.Close()
}

// EndBatch writes what was gathered and returns the first error of the batch.
func (c *batchConn) EndBatch() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batching = false
	c.flushLocked()
	return c.err
}

// flushLocked writes the gathered bytes. Lock c.mu must be held.
func (c *batchConn) flushLocked() {
	if len(c.buf) == 0 || c.err != nil {
		c.buf = c.buf[:0]
		return
	}
	_, c.err = c.Conn.Write(c.buf)
	if cap(c.buf) > batchWriteLimit*2 {
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
}
