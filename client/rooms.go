package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/wire"
)

// User properties of room deliveries and resume subscriptions.
const (
	propID        = "id"
	propAuthor    = "author"
	propTimestamp = "timestamp"
	propEpoch     = "epoch"
	propSince     = "since"
)

// Message is a room message as delivered or read from the history.
type Message struct {
	// Room is the room the message was posted to.
	Room string
	// ID is the message's id in the room: 1, 2, 3… with no gap.
	ID uint64
	// Author is the user who posted it.
	Author string
	// Timestamp is when the broker accepted it (millisecond precision).
	Timestamp time.Time
	// Epoch is the room history's epoch, for live deliveries (empty for history reads).
	Epoch string
	// Payload is the message as delivered: for text and json rooms the JSON object with id,
	// author and timestamp added, for binary rooms the bytes as posted. For history reads of
	// binary rooms it is the object {"binary": "<base64>", "id", "author", "timestamp"}.
	Payload []byte
	// OriginBroker and OriginID say where a bridged message was first posted: the name of
	// that broker and the message's id there (the user properties origin-broker and
	// origin-id of the delivery; see "Device-to-device RPC and bridges" in
	// docs/protocol.md). Both are empty for a message posted on this broker, and for
	// history reads.
	OriginBroker string
	OriginID     uint64
	// OriginEpoch is the user property origin-epoch of the delivery, when it has one: the
	// history epoch of the sender's room, which scopes OriginID.
	OriginEpoch string
}

// Text returns the textMessage field of a text room's message, "" when it has none.
func (m Message) Text() string {
	var t struct {
		TextMessage string `json:"textMessage"`
	}
	_ = json.Unmarshal(m.Payload, &t) // non-JSON payloads have no text
	return t.TextMessage
}

// Decode unmarshals the JSON payload into v.
func (m Message) Decode(v any) error {
	if err := json.Unmarshal(m.Payload, v); err != nil {
		return fmt.Errorf("decode message %d of room %q: %w", m.ID, m.Room, err)
	}
	return nil
}

// Binary returns the bytes of a binary room's message read from the history (the base64
// field "binary"), and false when the payload has no such field.
func (m Message) Binary() ([]byte, bool) {
	var b struct {
		Binary *string `json:"binary"`
	}
	if json.Unmarshal(m.Payload, &b) != nil || b.Binary == nil {
		return nil, false
	}
	out, err := base64.StdEncoding.DecodeString(*b.Binary)
	return out, err == nil
}

// TextMessage returns the payload a text room accepts: {"textMessage": text}.
func TextMessage(text string) []byte {
	b, _ := json.Marshal(struct {
		TextMessage string `json:"textMessage"`
	}{text}) // a string always marshals
	return b
}

// JoinOptions change how Join starts.
type JoinOptions struct {
	// Resume makes the room start after message Since of history epoch Epoch, as if the client
	// had been joined all along: the broker first replays every stored message with a larger
	// id (all of the stored history when Since is 0). Use it to continue from a position saved
	// by an earlier process. When false, only messages posted after the join are delivered.
	Resume bool
	// Since is the id of the last message already seen, with Resume.
	Since uint64
	// Epoch is the history epoch Since belongs to, with Resume; empty means unknown.
	Epoch string
	// Events subscribes to rooms/{room}/events too (userJoined, userLeft, accessListChanged,
	// modeChanged, roomDeleted), delivered to OnEvent.
	Events bool
	// OnEvent receives the room's events (with Events) and the client's notifications about
	// the room: historyGap and historyReset after a resume, and roomAccessRemoved, after which
	// the client has left the room. The client also reports roomAccessRemoved itself when the
	// broker refuses the room on a reconnect (it was deleted, or closed to the user). May be
	// nil.
	OnEvent func(Event)
}

// roomState is the client's membership of a room. Its fields are guarded by Client.mu; the
// dispatcher moves last and epoch on.
type roomState struct {
	name      string
	onMessage func(Message)
	opts      JoinOptions
	// last is the id of the last message delivered, or of the room's last message when it was
	// joined; a resubscription resumes after it.
	last  uint64
	epoch string
	// resume is false until the room has a position to resume from.
	resume bool
	// waiting is true while a live join waits for the room's position; the messages that
	// arrive meanwhile are held.
	waiting bool
	held    []Message
}

// resumePosition returns the since and epoch to subscribe with, and false for a live join.
// Lock Client.mu must be held.
func (r *roomState) resumePosition() (uint64, string, bool) {
	return r.last, r.epoch, r.resume
}

// Join joins room: it subscribes to rooms/{room} and calls onMessage (on the client's
// callback goroutine) for each message, in id order. After a reconnect the client resumes
// after the last message delivered, so onMessage sees every message exactly once; see the
// package documentation. opts may be nil. Joining a room already joined replaces its callback
// and options and keeps its position.
//
// Without opts.Resume, the room starts after its last message at the time of the join, which
// Join reads with roomHistoryInfo right after the SUBSCRIBE: messages up to that one are not
// delivered, every later one is.
func (c *Client) Join(ctx context.Context, room string, onMessage func(Message), opts *JoinOptions) error {
	if onMessage == nil {
		return errors.New("client: Join needs a message callback")
	}
	if !wire.ValidName(room) {
		return fmt.Errorf("join room %q: %w", room, &Error{Code: CodeInvalidName, Message: "invalid room name"})
	}
	var o JoinOptions
	if opts != nil {
		o = *opts
	}
	if err := c.awaitReady(ctx); err != nil {
		return fmt.Errorf("join room %q: %w", room, err)
	}
	rs := &roomState{name: room, onMessage: onMessage, opts: o, last: o.Since, epoch: o.Epoch, resume: o.Resume, waiting: !o.Resume}
	c.subMu.Lock()
	c.mu.Lock()
	if old, ok := c.rooms[room]; ok && !o.Resume && old.resume {
		rs.last, rs.epoch, rs.resume, rs.waiting = old.last, old.epoch, true, false
	}
	c.rooms[room] = rs
	c.mu.Unlock()
	err := c.subscribeRoom(ctx, c.manager(), rs)
	c.subMu.Unlock()
	if err == nil && rs.waiting {
		// Not under subMu: the RPC waits for the connection, which a reconnect sets up under
		// subMu.
		err = c.position(ctx, rs)
	}
	if err != nil {
		c.mu.Lock()
		if c.rooms[room] == rs {
			delete(c.rooms, room)
		}
		c.mu.Unlock()
		return fmt.Errorf("join room %q: %w", room, err)
	}
	return nil
}

// position reads the position of a live join and releases the messages held meanwhile.
func (c *Client) position(ctx context.Context, rs *roomState) error {
	info, err := c.RoomHistoryInfo(ctx, rs.name)
	if err != nil {
		c.mu.Lock()
		mine := c.rooms[rs.name] == rs
		if mine {
			delete(c.rooms, rs.name)
		}
		c.mu.Unlock()
		if mine { // not joined again meanwhile
			uctx, cancel := context.WithTimeout(c.ctx, DefaultSetupTimeout)
			defer cancel()
			if uerr := c.unsubscribe(uctx, rs); uerr != nil {
				c.log.Warn("leave room after a failed join", logKeyRoom, rs.name, logKeyError, uerr)
			}
		}
		return err
	}
	c.mu.Lock()
	rs.waiting, rs.resume = false, true
	rs.last = max(rs.last, info.LastMessageID)
	if rs.epoch == "" {
		rs.epoch = info.Epoch
	}
	c.mu.Unlock()
	c.queue.push(item{fn: func() { c.release(rs) }})
	return nil
}

// subscribeRoom subscribes to rs's room, with its resume position if it has one, and to its
// events topic. Lock subMu must be held.
func (c *Client) subscribeRoom(ctx context.Context, cm *autopaho.ConnectionManager, rs *roomState) error {
	c.mu.Lock()
	since, epoch, resume := rs.resumePosition()
	c.mu.Unlock()
	var props paho.UserProperties
	if resume {
		props = paho.UserProperties{{Key: propSince, Value: strconv.FormatUint(since, 10)}}
		if epoch != "" {
			props = append(props, paho.UserProperty{Key: propEpoch, Value: epoch})
		}
	}
	if rs.opts.Events {
		if err := c.subscribe(ctx, cm, nil, paho.SubscribeOptions{Topic: wire.RoomEventsTopic(rs.name), QoS: 1}); err != nil {
			return err
		}
	}
	return c.subscribe(ctx, cm, props, paho.SubscribeOptions{Topic: wire.RoomTopic(rs.name), QoS: 1})
}

// resubscribeRooms joins every room again on connection gen. It returns false when a room
// could not be subscribed for another reason than a refusal (it is logged; the next
// connection tries again). Lock subMu must be held.
func (c *Client) resubscribeRooms(ctx context.Context, cm *autopaho.ConnectionManager, gen uint64) bool {
	c.mu.Lock()
	rooms := make([]*roomState, 0, len(c.rooms))
	for _, rs := range c.rooms {
		rooms = append(rooms, rs)
	}
	c.mu.Unlock()
	for _, rs := range rooms {
		if !c.current(gen) {
			return false
		}
		err := c.subscribeRoom(ctx, cm, rs)
		var se *SubscribeError
		switch {
		case errors.As(err, &se):
			// The room is gone or closed to the user: stop trying.
			c.log.Warn("room refused on reconnect; leaving it", logKeyRoom, rs.name, logKeyError, err)
			c.mu.Lock()
			if c.rooms[rs.name] == rs {
				delete(c.rooms, rs.name)
			}
			c.mu.Unlock()
			if fn := rs.opts.OnEvent; fn != nil {
				name := rs.name
				c.queue.push(item{fn: func() {
					fn(Event{Name: EventRoomAccessRemoved, Room: name, Fields: map[string]any{"event": EventRoomAccessRemoved, "room": name}})
				}})
			}
		case err != nil:
			c.log.Error("rejoin room", logKeyRoom, rs.name, logKeyError, err)
			return false
		}
	}
	return true
}

// Leave leaves room: it unsubscribes and forgets the room's position.
func (c *Client) Leave(ctx context.Context, room string) error {
	if err := c.awaitReady(ctx); err != nil {
		return fmt.Errorf("leave room %q: %w", room, err)
	}
	c.mu.Lock()
	rs, ok := c.rooms[room]
	delete(c.rooms, room)
	c.mu.Unlock()
	if !ok {
		rs = &roomState{name: room}
	}
	if err := c.unsubscribe(ctx, rs); err != nil {
		return fmt.Errorf("leave room %q: %w", room, err)
	}
	return nil
}

// unsubscribe unsubscribes from rs's room (and its events).
func (c *Client) unsubscribe(ctx context.Context, rs *roomState) error {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	topics := []string{wire.RoomTopic(rs.name)}
	if rs.opts.Events {
		topics = append(topics, wire.RoomEventsTopic(rs.name))
	}
	if _, err := c.manager().Unsubscribe(ctx, &paho.Unsubscribe{Topics: topics}); err != nil {
		return connErr(err)
	}
	return nil
}

// Position returns the id of the last message of room delivered to the callback and the
// history epoch, to save and pass back as JoinOptions.Since and Epoch later. ok is false when
// the room is not joined.
func (c *Client) Position(room string) (since uint64, epoch string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs, ok := c.rooms[room]
	if !ok {
		return 0, "", false
	}
	return rs.last, rs.epoch, true
}

// forgetRoom drops the client's membership of room after the broker ended it.
func (c *Client) forgetRoom(room string) {
	c.mu.Lock()
	delete(c.rooms, room)
	c.mu.Unlock()
}

// resetRoom starts room's ids again in history epoch epoch, unless a message of that epoch
// did already (the historyReset event and the replay that follows it may arrive in either
// order). It runs on the dispatcher.
func (c *Client) resetRoom(room, epoch string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rs, ok := c.rooms[room]; ok && epoch != "" && rs.epoch != epoch {
		rs.epoch, rs.last = epoch, 0
	}
}

// roomMessage delivers a room message unless it was delivered already. It runs on the
// dispatcher.
func (c *Client) roomMessage(room string, p *paho.Publish) {
	m, err := parseDelivery(room, p)
	if err != nil {
		c.log.Warn("bad room message", logKeyRoom, room, logKeyError, err)
		return
	}
	c.mu.Lock()
	rs, ok := c.rooms[room]
	if !ok {
		c.mu.Unlock()
		return // left, or joined by the roomJoin RPC without Join
	}
	if rs.waiting {
		rs.held = append(rs.held, m)
		c.mu.Unlock()
		return
	}
	msgs := c.acceptLocked(rs, append(rs.held, m))
	rs.held = nil
	c.mu.Unlock()
	for _, m := range msgs {
		rs.onMessage(m)
	}
}

// release delivers the messages held while a live join waited for its position. It runs on
// the dispatcher.
func (c *Client) release(rs *roomState) {
	c.mu.Lock()
	if rs.waiting || c.rooms[rs.name] != rs {
		c.mu.Unlock()
		return
	}
	msgs := c.acceptLocked(rs, rs.held)
	rs.held = nil
	c.mu.Unlock()
	for _, m := range msgs {
		rs.onMessage(m)
	}
}

// acceptLocked moves rs's position over msgs, in order, and returns those to deliver: not
// those at or before the position (duplicates of a replay after a reconnect). A message of
// another history epoch starts the ids again. Lock mu must be held.
func (c *Client) acceptLocked(rs *roomState, msgs []Message) []Message {
	out := msgs[:0]
	for _, m := range msgs {
		if m.Epoch != "" && rs.epoch != "" && m.Epoch != rs.epoch {
			c.log.Info("room history epoch changed; ids start again", logKeyRoom, rs.name, logKeyEpoch, m.Epoch)
			rs.last = 0
		}
		if m.Epoch != "" {
			rs.epoch = m.Epoch
		}
		if m.ID <= rs.last {
			continue
		}
		rs.last, rs.resume = m.ID, true
		out = append(out, m)
	}
	return out
}

// roomEvent hands ev to the OnEvent of room, if joined.
func (c *Client) roomEvent(room string, ev Event) {
	c.mu.Lock()
	rs, ok := c.rooms[room]
	c.mu.Unlock()
	if ok && rs.opts.OnEvent != nil {
		rs.opts.OnEvent(ev)
	}
}

// parseDelivery reads a room message from its v5 user properties.
func parseDelivery(room string, p *paho.Publish) (Message, error) {
	m := Message{Room: room, Payload: p.Payload}
	if p.Properties == nil {
		return m, errors.New("no user properties")
	}
	id, err := strconv.ParseUint(p.Properties.User.Get(propID), 10, 64)
	if err != nil {
		return m, fmt.Errorf("user property id: %w", err)
	}
	m.ID = id
	m.Author = p.Properties.User.Get(propAuthor)
	if ts, err := strconv.ParseInt(p.Properties.User.Get(propTimestamp), 10, 64); err == nil {
		m.Timestamp = time.UnixMilli(ts)
	}
	m.Epoch = p.Properties.User.Get(propEpoch)
	// The broker stores only well-formed origins; one that is not is left out, the message
	// still delivered.
	if origin, err := wire.ParseOrigin(p.Properties.User.Get(wire.PropOriginBroker), p.Properties.User.Get(wire.PropOriginID), p.Properties.User.Get(wire.PropOriginEpoch)); err == nil {
		m.OriginBroker, m.OriginID, m.OriginEpoch = origin.Broker, origin.ID, origin.Epoch
	}
	return m, nil
}

// historyMessage decodes a message of a history read.
func historyMessage(room string, raw json.RawMessage) (Message, error) {
	var h historyHead
	if !h.readPrefix(raw) {
		if err := json.Unmarshal(raw, &h); err != nil {
			return Message{}, fmt.Errorf("history message of room %q: %w", room, err)
		}
	}
	return Message{Room: room, ID: h.ID, Author: h.Author, Timestamp: time.UnixMilli(h.Timestamp), Payload: raw}, nil
}

// historyHead is what a client reads of a history message besides its raw JSON.
type historyHead struct {
	ID        uint64 `json:"id"`
	Author    string `json:"author"`
	Timestamp int64  `json:"timestamp"`
}

// readPrefix reads id, author and timestamp when they open the object, in that order and
// without white space, as the broker writes them, without scanning the rest of the message;
// it reports false otherwise (the caller decodes the whole object then).
func (h *historyHead) readPrefix(raw []byte) bool {
	rest, ok := bytes.CutPrefix(raw, []byte(`{"id":`))
	if !ok {
		return false
	}
	id, rest, ok := cutDigits(rest)
	if !ok {
		return false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"author":"`)); !ok {
		return false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return false // an escaped author: decode it properly
	}
	author := string(rest[:end])
	if rest, ok = bytes.CutPrefix(rest[end+1:], []byte(`,"timestamp":`)); !ok {
		return false
	}
	ts, rest, ok := cutDigits(rest)
	if !ok || len(rest) == 0 || (rest[0] != ',' && rest[0] != '}') {
		return false
	}
	h.ID, h.Author, h.Timestamp = id, author, int64(ts)
	return true
}

// cutDigits parses the decimal number at the start of b and returns it with the rest of b.
func cutDigits(b []byte) (uint64, []byte, bool) {
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n == 0 || n > 19 {
		return 0, b, false
	}
	v, err := strconv.ParseUint(string(b[:n]), 10, 64)
	return v, b[n:], err == nil && v <= 1<<63-1
}

// Send posts payload to room with QoS 1 and returns once the broker accepted it (stored and
// gave it an id). A refusal is a *PublishError: errors.Is matches ErrBadMessage (the room's
// checker refused it), ErrNotAllowed, ErrTooLarge or ErrRateLimited.
func (c *Client) Send(ctx context.Context, room string, payload []byte) error {
	if err := c.publish(ctx, &paho.Publish{Topic: wire.RoomTopic(room), QoS: 1, Payload: payload}); err != nil {
		return fmt.Errorf("send to room %q: %w", room, err)
	}
	return nil
}

// SendOptions change how SendWith posts a room message.
type SendOptions struct {
	// OriginBroker and OriginID give the message the origin of a bridged message: the name
	// of the broker where it was first posted and its id there, sent as the user properties
	// origin-broker and origin-id (docs/protocol.md, "Device-to-device RPC and bridges").
	// Both or neither; the broker stores them with the message and delivers them, and it
	// acknowledges but does not store again a message whose origin it has stored already.
	// Posting with an origin is for bridges: the broker checks only the form of the values.
	OriginBroker string
	OriginID     uint64
	// OriginEpoch is the history epoch of the sender's room (origin-epoch), which scopes
	// OriginID for that duplicate check; empty means none.
	OriginEpoch string
}

// userProperties returns the user properties of o.
func (o SendOptions) userProperties() paho.UserProperties {
	var props paho.UserProperties
	if o.OriginBroker != "" || o.OriginID != 0 {
		props = append(props,
			paho.UserProperty{Key: wire.PropOriginBroker, Value: o.OriginBroker},
			paho.UserProperty{Key: wire.PropOriginID, Value: strconv.FormatUint(o.OriginID, 10)})
	}
	if o.OriginEpoch != "" {
		props = append(props, paho.UserProperty{Key: wire.PropOriginEpoch, Value: o.OriginEpoch})
	}
	return props
}

// SendWith is Send with options: it posts payload to room with QoS 1, carrying the user
// properties of opts, and returns once the broker accepted it. A refusal is a
// *PublishError, as for Send; a malformed origin is refused with ErrBadMessage.
func (c *Client) SendWith(ctx context.Context, room string, payload []byte, opts SendOptions) error {
	p := &paho.Publish{Topic: wire.RoomTopic(room), QoS: 1, Payload: payload}
	if props := opts.userProperties(); len(props) > 0 {
		p.Properties = &paho.PublishProperties{User: props}
	}
	if err := c.publish(ctx, p); err != nil {
		return fmt.Errorf("send to room %q: %w", room, err)
	}
	return nil
}

// SendText posts {"textMessage": text} to room: the message of a text room. See Send.
func (c *Client) SendText(ctx context.Context, room, text string) error {
	return c.Send(ctx, room, TextMessage(text))
}

// publish publishes p and turns a refusal into a *PublishError.
func (c *Client) publish(ctx context.Context, p *paho.Publish) error {
	cm, err := c.connection(ctx)
	if err != nil {
		return err
	}
	// A QoS 1 publish waits for its PUBACK, which a connection that drops never brings: it
	// gives up then, with ErrNotConnected.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	down := c.downSignal()
	go func() {
		select {
		case <-down:
			cancel()
		case <-pctx.Done():
		}
	}()
	pr, err := cm.Publish(pctx, p)
	if err != nil && ctx.Err() == nil && pctx.Err() != nil {
		return fmt.Errorf("publish to %q: %w", p.Topic, ErrNotConnected)
	}
	if pr != nil && pr.ReasonCode >= 0x80 {
		pe := &PublishError{Topic: p.Topic, ReasonCode: pr.ReasonCode}
		if pr.Properties != nil {
			pe.Reason = pr.Properties.ReasonString
		}
		return pe
	}
	if err != nil {
		return connErr(err)
	}
	return nil
}
