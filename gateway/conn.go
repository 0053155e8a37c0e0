package gateway

import (
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/devices"
	"github.com/roomq/roomq/metrics"
)

// conn is one gateway connection. Its ServeHTTP call reads; writeLoop, which ServeHTTP starts
// and waits for, is the only writer of data frames. Frames to send wait in a bounded queue.
type conn struct {
	g       *Gateway
	ws      *websocket.Conn
	id      acl.Identity
	session *devices.Session

	send       chan []byte   // frames to write; never closed
	done       chan struct{} // closed by close: writeLoop says goodbye and ends
	writerDone chan struct{} // closed when writeLoop has ended and the socket is closed

	closeOnce sync.Once
	closeCode int // set by the first close, before done is closed
	closeText string

	mu     sync.Mutex
	events map[string]bool // subscribed events
}

func newConn(g *Gateway, ws *websocket.Conn, id acl.Identity) *conn {
	clientID, sessionID := newClientID()
	c := &conn{
		g:  g,
		ws: ws,
		id: id,
		session: &devices.Session{
			ClientID:    clientID,
			ID:          sessionID,
			Identity:    id,
			ConnectedAt: time.Now(),
		},
		send:       make(chan []byte, g.opts.SendQueue),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		events:     make(map[string]bool, len(events)),
	}
	for _, ev := range g.opts.DefaultEvents {
		c.events[ev] = true
	}
	return c
}

// subscribed reports whether the connection subscribes to event.
func (c *conn) subscribed(event string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events[event]
}

// setSubscribed subscribes to evs, or unsubscribes from them.
func (c *conn) setSubscribed(evs []string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range evs {
		c.events[ev] = on
	}
}

// push queues frame f without blocking. A client whose queue is full has its socket closed
// at once, without a close frame, which could not get past the frames it did not read: it
// sees close code 1006 and may connect again.
func (c *conn) push(f []byte) {
	select {
	case <-c.done:
		return
	default:
	}
	select {
	case c.send <- f:
	default:
		c.g.opts.Metrics.Dropped(metrics.DropSlowConsumer)
		c.g.log.Warn("slow gateway client disconnected", logKeyClient, c.session.ClientID, logKeyUser, c.id.User, "queued", cap(c.send))
		c.close(0, "")
		_ = c.ws.Close() // ends a write in progress, and readLoop
	}
}

// close ends the connection with a close frame of code and text; the first call wins. It
// never blocks.
func (c *conn) close(code int, text string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeText = code, text
		close(c.done)
	})
}

// readLoop reads client frames until the connection fails or is closed, and queues the
// answers. Each frame, and each pong, extends the read deadline by PingInterval + PongTimeout.
func (c *conn) readLoop() error {
	c.ws.SetReadLimit(c.g.opts.ReadLimit)
	wait := c.g.opts.PingInterval + c.g.opts.PongTimeout
	_ = c.ws.SetReadDeadline(time.Now().Add(wait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(wait)) })
	for {
		typ, b, err := c.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(wait))
		if answer := c.handle(typ == websocket.TextMessage, b); answer != nil {
			c.push(answer)
		}
	}
}

// writeLoop writes the queued frames and the pings until the connection is closed or a write
// fails; then it sends the close frame and closes the socket, which ends readLoop.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer func() { _ = c.ws.Close() }()
	timeout := c.g.opts.WriteTimeout
	ping := time.NewTicker(c.g.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.done: // first: select would pick at random among ready cases
			c.goodbye()
			return
		default:
		}
		select {
		case <-c.done:
			c.goodbye()
			return
		case f := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(timeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, f); err != nil {
				c.close(0, "")
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(timeout)); err != nil {
				c.close(0, "")
				return
			}
		}
	}
}

// goodbye sends the close frame of the first close, if it has a code.
func (c *conn) goodbye() {
	if c.closeCode != 0 {
		msg := websocket.FormatCloseMessage(c.closeCode, c.closeText)
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.g.opts.WriteTimeout))
	}
}
