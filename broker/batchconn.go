package broker

import (
	"net"
	"sync"
	"time"

	"github.com/roomq/roomq/internal/batchwrite"
)

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

// batchConn is a connection whose writes can be gathered (package batchwrite): between
// StartBatch and EndBatch, writes are kept and written together, in one system call where one
// would be made per packet.
type batchConn struct {
	net.Conn

	mu    sync.Mutex // held while writing to Conn
	batch batchwrite.Batch
}

// Write implements net.Conn.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.batch.Write(p, c.send)
}

// send writes p to the connection. Lock c.mu must be held.
func (c *batchConn) send(p []byte) error {
	_, err := c.Conn.Write(p)
	return err
}

// StartBatch gathers the following writes.
func (c *batchConn) StartBatch() {
	c.mu.Lock()
	c.batch.Start()
	c.mu.Unlock()
}

// EndBatch writes what was gathered and returns the first error of the batch.
func (c *batchConn) EndBatch() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.batch.End(c.send)
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
	_ = c.batch.End(c.send)
	c.mu.Unlock()
	return c.Conn.Close()
}
