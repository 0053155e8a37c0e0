package client

import (
	"encoding/json"
	"strings"
	"sync"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/wire"
)

// item is one entry of the dispatcher's queue: a received PUBLISH or a callback to run.
type item struct {
	pub *paho.Publish
	fn  func()
}

// queue is an unbounded FIFO: push never blocks, so paho's router is never held up by a slow
// callback.
type queue struct {
	mu     sync.Mutex
	items  []item
	wake   chan struct{} // has a value when items may be non-empty
	closed bool
}

func newQueue() *queue { return &queue{wake: make(chan struct{}, 1)} }

// push appends it; after close it is dropped.
func (q *queue) push(it item) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close makes pop return false once the queue is empty.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop returns the oldest items, waiting for one; it returns false when the queue is closed
// and empty.
func (q *queue) pop() ([]item, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			items := q.items
			q.items = nil
			q.mu.Unlock()
			return items, true
		}
		if q.closed {
			q.mu.Unlock()
			return nil, false
		}
		q.mu.Unlock()
		<-q.wake
	}
}

// onPublish is paho's callback for every received PUBLISH. Replies go straight to the waiting
// call; everything else is queued for the dispatcher. It never blocks.
func (c *Client) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	if strings.HasPrefix(p.Topic, c.repliesPrefix()) || (c.cfg.CallResponseTopic != "" && p.Topic == c.cfg.CallResponseTopic) {
		c.deliverReply(p)
		return true, nil
	}
	c.queue.push(item{pub: p})
	return true, nil
}

// dispatch runs the queued callbacks one at a time until the queue is closed and drained.
func (c *Client) dispatch() {
	for {
		items, ok := c.queue.pop()
		if !ok {
			return
		}
		for _, it := range items {
			if it.fn != nil {
				it.fn()
				continue
			}
			c.route(it.pub)
		}
	}
}

// route hands a received PUBLISH to the callback of its topic.
func (c *Client) route(p *paho.Publish) {
	t := wire.ParseTopic(p.Topic)
	switch t.Kind {
	case wire.TopicRoom:
		c.roomMessage(t.Name, p)
		return
	case wire.TopicRoomEvents:
		if ev, ok := c.parseEvent(p); ok {
			c.roomEvent(t.Name, ev)
		}
		return
	case wire.TopicUserEvents:
		if ev, ok := c.parseEvent(p); ok {
			c.userEvent(ev)
		}
		return
	case wire.TopicUserInbox:
		c.directMessage(p)
		return
	case wire.TopicPresence:
		c.presenceUpdate(p)
		return
	}
	c.handleRequest(p)
}

func (c *Client) parseEvent(p *paho.Publish) (Event, bool) {
	var ev Event
	if err := json.Unmarshal(p.Payload, &ev.Fields); err != nil {
		c.log.Warn("event is not a JSON object", logKeyTopic, p.Topic, logKeyError, err)
		return Event{}, false
	}
	ev.Name, _ = ev.Fields["event"].(string)
	ev.Room, _ = ev.Fields["room"].(string)
	return ev, true
}

// userEvent handles a notification on users/{user}/events: events about a room also go to
// that room's OnEvent, roomAccessRemoved ends the client's membership and historyReset
// starts the room's ids again.
func (c *Client) userEvent(ev Event) {
	if ev.Room != "" {
		switch ev.Name {
		case wire.EventHistoryGap, wire.EventHistoryReset, wire.EventRoomAccessRemoved:
			c.roomEvent(ev.Room, ev)
		}
		switch ev.Name {
		case wire.EventRoomAccessRemoved:
			c.forgetRoom(ev.Room)
		case wire.EventHistoryReset:
			epoch, _ := ev.Fields["epoch"].(string)
			c.resetRoom(ev.Room, epoch)
		}
	}
	if fn := c.cfg.OnEvent; fn != nil {
		fn(ev)
	}
}

// Event is a broker notification: an object with an "event" field on rooms/{room}/events or
// users/{user}/events (see Notifications in docs/protocol.md).
type Event struct {
	// Name is the "event" field: userJoined, historyGap, systemMessage…
	Name string
	// Room is the "room" field, empty for events about no room.
	Room string
	// Fields is the whole object as decoded by encoding/json.
	Fields map[string]any
}

// Event names, from docs/protocol.md.
const (
	EventUserJoined        = wire.EventUserJoined
	EventUserLeft          = wire.EventUserLeft
	EventAccessListChanged = wire.EventAccessListChanged
	EventModeChanged       = wire.EventModeChanged
	EventRoomDeleted       = wire.EventRoomDeleted
	EventRoomAccessRemoved = wire.EventRoomAccessRemoved
	EventRoomJoinedEcho    = wire.EventRoomJoinedEcho
	EventRoomLeftEcho      = wire.EventRoomLeftEcho
	EventDirectMessageEcho = wire.EventDirectMessageEcho
	EventConnectionEcho    = wire.EventConnectionEcho
	EventDisconnectionEcho = wire.EventDisconnectionEcho
	EventSystemMessage     = wire.EventSystemMessage
	EventHistoryGap        = wire.EventHistoryGap
	EventHistoryReset      = wire.EventHistoryReset
)
