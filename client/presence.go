package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/wire"
)

// Presence is a user's online state, the retained object on presence/{user}.
type Presence struct {
	// User is the user the state is about.
	User string
	// Online is true while the user has at least one connection.
	Online bool
	// Connections is the number of the user's connections.
	Connections int
	// Timestamp is when the state last changed.
	Timestamp time.Time
}

// WatchPresence subscribes to presence/{user} ("+" for every user) and calls fn with the
// current (retained) state and each change. The watch is restored after a reconnect, which
// delivers the current state again. Watching a user again replaces fn.
func (c *Client) WatchPresence(ctx context.Context, user string, fn func(Presence)) error {
	if fn == nil {
		return fmt.Errorf("watch presence of %q: no callback", user)
	}
	if err := c.awaitReady(ctx); err != nil {
		return fmt.Errorf("watch presence of %q: %w", user, err)
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	c.presence[user] = fn
	c.mu.Unlock()
	if err := c.subscribe(ctx, c.manager(), nil, paho.SubscribeOptions{Topic: wire.PresencePrefix + user, QoS: 1}); err != nil {
		c.mu.Lock()
		delete(c.presence, user)
		c.mu.Unlock()
		return fmt.Errorf("watch presence of %q: %w", user, err)
	}
	return nil
}

// UnwatchPresence ends a watch started with WatchPresence.
func (c *Client) UnwatchPresence(ctx context.Context, user string) error {
	if err := c.awaitReady(ctx); err != nil {
		return fmt.Errorf("unwatch presence of %q: %w", user, err)
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	delete(c.presence, user)
	c.mu.Unlock()
	if _, err := c.manager().Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{wire.PresencePrefix + user}}); err != nil {
		return fmt.Errorf("unwatch presence of %q: %w", user, connErr(err))
	}
	return nil
}

// presenceUpdate hands a presence object to the watches that match it. It runs on the
// dispatcher.
func (c *Client) presenceUpdate(p *paho.Publish) {
	if len(p.Payload) == 0 {
		return // a cleared retained message
	}
	var w wire.Presence
	if err := json.Unmarshal(p.Payload, &w); err != nil {
		c.log.Warn("bad presence object", logKeyTopic, p.Topic, logKeyError, err)
		return
	}
	pr := Presence{User: w.User, Online: w.Online, Connections: w.Connections, Timestamp: time.UnixMilli(w.Timestamp)}
	var fns []func(Presence)
	c.mu.Lock()
	for f, fn := range c.presence {
		if wire.MatchTopic(wire.PresencePrefix+f, p.Topic) {
			fns = append(fns, fn)
		}
	}
	c.mu.Unlock()
	for _, fn := range fns {
		fn(pr)
	}
}

// DirectMessage is a message received on the client's inbox, users/{user}/inbox.
type DirectMessage struct {
	// Author is the user who sent it.
	Author string
	// Timestamp is when the broker accepted it.
	Timestamp time.Time
	// Text is the textMessage field (direct messages are checked like a text room).
	Text string
	// Payload is the message as delivered: the JSON object with author and timestamp added.
	Payload []byte
}

// directMessage hands an inbox message to Config.OnDirectMessage. It runs on the dispatcher.
func (c *Client) directMessage(p *paho.Publish) {
	var d struct {
		Author      string `json:"author"`
		Timestamp   int64  `json:"timestamp"`
		TextMessage string `json:"textMessage"`
	}
	if err := json.Unmarshal(p.Payload, &d); err != nil {
		c.log.Warn("bad direct message", logKeyTopic, p.Topic, logKeyError, err)
		return
	}
	if fn := c.cfg.OnDirectMessage; fn != nil {
		fn(DirectMessage{Author: d.Author, Timestamp: time.UnixMilli(d.Timestamp), Text: d.TextMessage, Payload: p.Payload})
	}
}

// SendDirect sends text as a direct message to user (the directMessage command) and returns
// when the broker delivered it. Errors: ErrNoUserOnline when the user has no connection,
// ErrNotAllowed (the user's lists refuse it, or user is the caller).
func (c *Client) SendDirect(ctx context.Context, user, text string) (time.Time, error) {
	return c.DirectMessage(ctx, user, TextMessage(text))
}
