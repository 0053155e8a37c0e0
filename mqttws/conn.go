package mqttws

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomq/roomq/internal/batchwrite"
)

// closeGrace bounds the time spent sending a close message before the socket is closed.
const closeGrace = time.Second

// conn presents a WebSocket connection as the byte stream Mochi reads MQTT packets from.
// Every Write is one binary message, except between StartBatch and EndBatch, where the writes
// are gathered into one message; Read runs across message boundaries, because MQTT packets
// need not be aligned with messages [MQTT-6.0.0-2].
//
// Mochi reads from one goroutine and writes from others; gorilla allows one reader and one
// writer at a time, which rmu and wmu guarantee. Close may be called from any goroutine.
type conn struct {
	ws *websocket.Conn

	// goingAway, when true, makes Close send close code 1001 (the listener is shutting down)
	// instead of 1000. It is owned by the Listener.
	goingAway *atomic.Bool

	// hs is what the upgrade request presented (see Handshake); read-only after newConn.
	hs handshake

	rmu  sync.Mutex // guards r and rerr; held for the whole of Read
	r    io.Reader  // the message being read, nil between messages
	rerr error      // sticky read error set by this wrapper

	wmu   sync.Mutex                // serialises writes and the deadline gorilla applies to them
	wdl   atomic.Pointer[time.Time] // write deadline for the next Write; nil for none
	batch batchwrite.Batch          // guarded by wmu

	closeOnce sync.Once
	closeErr  error
}

var _ net.Conn = (*conn)(nil)

func newConn(ws *websocket.Conn, goingAway *atomic.Bool, hs handshake) *conn {
	return &conn{ws: ws, goingAway: goingAway, hs: hs}
}

// Read reads MQTT bytes from the current binary message, moving on to the next message when
// one is exhausted. A text message closes the connection [MQTT-6.0.0-1]. A close message with
// a normal code ends the stream with io.EOF.
func (c *conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return 0, c.rerr
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, c.readFailed(err)
			}
			if typ != websocket.BinaryMessage {
				c.rerr = ErrNotBinary
				c.closeWith(websocket.CloseUnsupportedData, "mqtt requires binary messages")
				return 0, c.rerr
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil // message done; an empty read moves on rather than returning 0, nil
			if n == 0 {
				continue
			}
			return n, nil
		}
		if err != nil {
			c.r = nil
			return n, c.readFailed(err)
		}
		return n, nil
	}
}

// readFailed maps a gorilla read error to what Mochi should see. gorilla's read errors are
// permanent, so they are not stored in rerr. Lock rmu must be held.
func (c *conn) readFailed(err error) error {
	if errors.Is(err, websocket.ErrReadLimit) {
		// gorilla has sent close code 1009 already; drop the socket.
		c.closeWith(websocket.CloseMessageTooBig, "")
		return err
	}
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway,
		websocket.CloseNoStatusReceived) {
		return io.EOF
	}
	return err
}

// Write sends p as one binary message, or adds it to the current batch.
func (c *conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.batch.Write(p, c.writeLocked)
}

// StartBatch gathers the following writes into one message, sent by EndBatch (or earlier,
// past batchwrite.Limit bytes). The broker's outbox uses it to send the packets it has queued
// for a connection together: one message and one system call where one per packet would be
// made.
func (c *conn) StartBatch() {
	c.wmu.Lock()
	c.batch.Start()
	c.wmu.Unlock()
}

// EndBatch sends what was gathered and returns the first error of the batch.
func (c *conn) EndBatch() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.batch.End(c.writeLocked)
}

// writeLocked sends p as one binary message. Lock wmu must be held.
func (c *conn) writeLocked(p []byte) error {
	var dl time.Time
	if t := c.wdl.Load(); t != nil {
		dl = *t
	}
	// gorilla keeps the write deadline in an unguarded field, so set it only under wmu.
	_ = c.ws.SetWriteDeadline(dl)
	return c.ws.WriteMessage(websocket.BinaryMessage, p)
}

// Close sends a close message (1000, or 1001 when the listener is shutting down) and closes
// the socket. Later calls do nothing and return nil.
func (c *conn) Close() error {
	code := websocket.CloseNormalClosure
	if c.goingAway != nil && c.goingAway.Load() {
		code = websocket.CloseGoingAway
	}
	return c.closeWith(code, "")
}

// closeWith closes the connection once, telling the peer why. It does not wait for the peer's
// reply: Mochi is done with the connection.
func (c *conn) closeWith(code int, reason string) error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.flushBatch()
		// WriteControl may run concurrently with Write; its error (for example
		// websocket.ErrCloseSent when gorilla answered the peer's close already) changes nothing.
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
			time.Now().Add(closeGrace))
		c.closeErr = c.ws.Close()
	})
	if !first {
		return nil
	}
	return c.closeErr
}

// flushBatch sends what the current batch gathered (a DISCONNECT written during the
// outbox's batch, for example), giving it closeGrace at most, as it gives a write in progress
// that holds the connection: a peer that stopped reading cannot hold Close.
func (c *conn) flushBatch() {
	_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(closeGrace))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	dl := time.Now().Add(closeGrace)
	c.wdl.Store(&dl)
	_ = c.batch.End(c.writeLocked)
}

// LocalAddr returns the local address of the underlying TCP connection.
func (c *conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the address of the TCP peer. Forwarding headers are not consulted.
func (c *conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets both the read and the write deadline.
func (c *conn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline. As with any gorilla connection, a read that times out
// leaves the connection unusable; Mochi disconnects the client in that case anyway.
func (c *conn) SetReadDeadline(t time.Time) error {
	return c.ws.SetReadDeadline(t)
}

// SetWriteDeadline sets the deadline for future writes and for a write in progress. It never
// waits for a write in progress to finish.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(&t)
	// Interrupt a write in progress; the next Write hands the deadline to gorilla.
	return c.ws.NetConn().SetWriteDeadline(t)
}
