package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/client"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// propEpoch is the user property of a room delivery that names the history epoch
// (docs/protocol.md).
const propEpoch = "epoch"

// Bounds of the room directions.
const (
	// syncTimeout bounds the wait, after a reconnect, for the far side's replay that shows
	// which of our messages it stored.
	syncTimeout = 30 * time.Second
	// postAttempts is how often a bridged-in message is tried locally before it is dropped.
	postAttempts = 3
)

// roomLink carries the messages of one room mapping.
type roomLink struct {
	b *Bridge
	m RoomMapping

	mu sync.Mutex
	// inKnown is false until the in position has been read from the far side; inPos is the
	// id of the last remote message handled (bridged in or skipped) in history inEpoch.
	inKnown bool
	inPos   uint64
	inEpoch string
	// moved is closed, and replaced, whenever inPos moves.
	moved chan struct{}
	// outPos is the id of the last local message the far side has (or that needed not go);
	// confirmed the highest local id the far side showed as stored, with our origin.
	outKnown  bool
	outPos    uint64
	confirmed uint64
	// sent is true once a message was published out: a later connection must first learn
	// whether the far side stored the last one. synced is the connection on which that was
	// learnt last.
	sent   bool
	synced *session
	// sess is the connection to the far side that is up, nil while there is none; member
	// is true while the client has the remote room joined (it rejoins it on every
	// connection by itself). changed is closed, and replaced, when either changes.
	sess    *session
	member  bool
	changed chan struct{}
}

// session is a connection of the rooms client to the far side, until ctx ends.
type session struct {
	ctx context.Context
}

func newRoomLink(b *Bridge, m RoomMapping) *roomLink {
	return &roomLink{b: b, m: m, moved: make(chan struct{}), changed: make(chan struct{})}
}

// status returns the mapping's positions.
func (l *roomLink) status() RoomStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	joined := l.member && l.sess != nil && l.sess.ctx.Err() == nil
	return RoomStatus{Local: l.m.Local, Remote: l.m.Remote, Direction: l.m.Direction, Joined: joined, LastOut: l.outPos, LastIn: l.inPos, RemoteEpoch: l.inEpoch}
}

// changeLocked wakes the goroutines waiting for sess or member to change. Lock mu must be
// held.
func (l *roomLink) changeLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// setSession records the connection that is up (nil: none).
func (l *roomLink) setSession(s *session) {
	l.mu.Lock()
	l.sess = s
	l.changeLocked()
	l.mu.Unlock()
}

// runRooms connects the rooms client to the far side and runs the room mappings until ctx
// ends; then it closes the client.
func (b *Bridge) runRooms(ctx context.Context) {
	var (
		mu     sync.Mutex
		cancel context.CancelFunc = func() {}
	)
	// OnConnect and OnConnectionLost run on the client's callback goroutine, in order.
	connected := func() {
		sctx, end := context.WithCancel(ctx)
		mu.Lock()
		cancel()
		cancel = end
		mu.Unlock()
		b.linkUp(&b.roomsUp)
		b.log.Info("bridge connected (rooms)", logKeyURL, b.cfg.URL)
		s := &session{ctx: sctx}
		for _, l := range b.links {
			l.setSession(s)
		}
	}
	lost := func() {
		mu.Lock()
		cancel()
		mu.Unlock()
		b.mu.Lock()
		b.roomsUp = false
		b.mu.Unlock()
		for _, l := range b.links {
			l.setSession(nil)
		}
		if ctx.Err() == nil {
			b.fail(fmt.Errorf("connection to %s lost", b.cfg.URL))
			b.log.Warn("bridge connection lost; reconnecting", logKeyURL, b.cfg.URL)
		}
	}
	defer func() {
		mu.Lock()
		cancel()
		mu.Unlock()
	}()
	cfg := client.Config{
		ServerURLs: []string{b.cfg.URL},
		User:       b.cfg.User, Password: b.cfg.Password,
		// Not the plain topics' client ids: both connections may be up at once. Numbered, so
		// that a new connection never takes over the previous one's client id, whose late
		// clean-up on the far side could end the new connection's subscriptions.
		ClientID:          b.cfg.ClientID + "-rooms",
		NumberConnections: true,
		TLS:               b.cfg.TLS,
		KeepAlive:         b.cfg.KeepAlive,
		ReconnectMin:      b.cfg.ReconnectMin, ReconnectMax: b.cfg.ReconnectMax,
		Logger:           b.log,
		OnConnect:        connected,
		OnConnectionLost: lost,
		OnConnectError: func(err error) {
			b.fail(fmt.Errorf("connect to %s: %w", b.cfg.URL, err))
		},
	}
	var c *client.Client
	for attempt := 1; ; attempt++ {
		var err error
		c, err = client.Connect(ctx, cfg)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		// Refused (credentials, a ban): the far side may change its mind.
		b.fail(err)
		b.log.Warn("bridge connect failed; trying again", logKeyURL, b.cfg.URL, logKeyError, err)
		select {
		case <-time.After(b.backoff(attempt)):
		case <-ctx.Done():
			return
		}
	}
	var wg sync.WaitGroup
	for _, l := range b.links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.runIn(ctx, c)
		}()
		if l.m.Direction.out() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.runOut(ctx, c)
			}()
		}
	}
	wg.Wait() // the link goroutines end with ctx
	cctx, end := context.WithTimeout(context.Background(), closeTimeout)
	defer end()
	if err := c.Close(cctx); err != nil {
		b.log.Info("bridge: close the connection to the far side", logKeyError, err)
	}
}

// runIn keeps the remote room joined until ctx ends: it joins it once connected, first live
// (after the room's last message), and again, from the last remote message handled, when
// the far side ended the membership.
func (l *roomLink) runIn(ctx context.Context, c *client.Client) {
	b := l.b
	for attempt := 1; ; {
		l.mu.Lock()
		s, member, changed := l.sess, l.member, l.changed
		opts := &client.JoinOptions{OnEvent: l.event}
		if l.inKnown {
			opts.Resume, opts.Since, opts.Epoch = true, l.inPos, l.inEpoch
		}
		l.mu.Unlock()
		if s == nil || s.ctx.Err() != nil || member {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		jctx, cancel := context.WithTimeout(s.ctx, setupTimeout)
		err := c.Join(jctx, l.m.Remote, func(m client.Message) { l.handle(ctx, m) }, opts)
		cancel()
		if err == nil {
			since, epoch, _ := c.Position(l.m.Remote)
			l.mu.Lock()
			if !l.inKnown {
				// A live join: the client delivers the messages after the room's last one,
				// which may have begun already.
				l.inKnown = true
				l.inPos = max(l.inPos, since)
				if l.inEpoch == "" {
					l.inEpoch = epoch
				}
			}
			l.member = true
			l.changeLocked()
			l.mu.Unlock()
			b.log.Debug("bridge: remote room joined", logKeyRoom, l.m.Remote, "since", opts.Since)
			attempt = 1
			continue
		}
		if ctx.Err() != nil {
			return
		}
		// Tried again while the connection is up: a refusal may be passing (the far side
		// still cleaning up after the previous connection, say).
		b.fail(err)
		b.log.Warn("bridge room setup failed; trying again", logKeyRoom, l.m.Local, logKeyError, err)
		select {
		case <-time.After(b.backoff(attempt)):
		case <-ctx.Done():
			return
		}
		attempt++
	}
}

// event handles the client's notifications about the remote room. It runs on the client's
// callback goroutine.
func (l *roomLink) event(ev client.Event) {
	switch ev.Name {
	case client.EventRoomAccessRemoved:
		// The client has left the room: runIn joins it again.
		l.b.log.Warn("bridge: the far side ended the remote room's membership; joining again", logKeyRoom, l.m.Remote)
		l.mu.Lock()
		l.member = false
		l.changeLocked()
		l.mu.Unlock()
	case client.EventHistoryGap:
		l.b.log.Warn("bridge: remote messages left the history before they were bridged", logKeyRoom, l.m.Remote)
	}
}

// awaitIn waits until the remote messages up to id of epoch have been handled.
func (l *roomLink) awaitIn(ctx context.Context, id uint64, epoch string) error {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	for {
		l.mu.Lock()
		done := l.inPos >= id || (epoch != "" && l.inEpoch != "" && l.inEpoch != epoch)
		moved := l.moved
		l.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// moveInLocked records id as the last remote message handled. Lock mu must be held.
func (l *roomLink) moveInLocked(id uint64) {
	l.inPos = max(l.inPos, id)
	close(l.moved)
	l.moved = make(chan struct{})
}

// handle handles a message of the remote room: one that came from here moves the out
// confirmation, one from elsewhere is posted to the local room (with the in direction). It
// runs on the client's callback goroutine, which delivers each message once, in id order.
func (l *roomLink) handle(ctx context.Context, m client.Message) {
	b := l.b
	id := m.ID
	l.mu.Lock()
	if m.Epoch != "" && l.inEpoch != "" && m.Epoch != l.inEpoch {
		b.log.Warn("bridge: remote room history started again", logKeyRoom, l.m.Remote, propEpoch, m.Epoch)
		l.inPos = 0
	}
	if m.Epoch != "" {
		l.inEpoch = m.Epoch
	}
	if id > l.inPos+1 && l.inPos > 0 {
		b.log.Warn("bridge: remote messages left the history before they were bridged", logKeyRoom, l.m.Remote, "from", l.inPos+1, "to", id-1)
	}
	if m.OriginBroker == b.cfg.LocalName {
		// Our own message, stored there: never brought back.
		l.confirmed = max(l.confirmed, m.OriginID)
		l.moveInLocked(id)
		l.mu.Unlock()
		return
	}
	if !l.m.Direction.in() {
		l.moveInLocked(id)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	from := wire.Origin{Broker: m.OriginBroker, ID: m.OriginID}
	if from.Broker == "" {
		from = wire.Origin{Broker: b.cfg.Name, ID: id}
	}
	from.Epoch = m.Epoch // the remote room's: its ids grow within it
	content := unenrich(m.Payload, id, m.Author, strconv.FormatInt(m.Timestamp.UnixMilli(), 10))
	caller := commands.Caller{Identity: acl.Identity{User: b.cfg.LocalUser}}
	var err error
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, localTimeout)
		_, err = b.poster.PostRoomFrom(pctx, caller, l.m.Local, content, from)
		cancel()
		if err == nil || attempt == postAttempts || !transient(err) || errors.Is(err, rooms.ErrDuplicate) || ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond): // a store hiccup
		case <-ctx.Done():
		}
	}
	if errors.Is(err, rooms.ErrDuplicate) {
		err = nil // posted already
	}
	if err != nil {
		b.dropped.Add(1)
		b.fail(err)
		b.log.Error("bridge: remote message not posted here; dropped", logKeyRoom, l.m.Local, logKeyID, id, logKeyError, err)
	} else {
		b.in.Add(1)
	}
	l.mu.Lock()
	l.moveInLocked(id)
	l.mu.Unlock()
}

// transient reports whether a local post may succeed when tried again.
func transient(err error) bool {
	c := wire.CodeOf(err)
	return c == wire.CodeStoreUnavailable || c == wire.CodeInternalError || c == wire.CodeTimeout
}

// unenrich returns the content a room's checker stored from a delivered payload: the JSON
// object without the keys id, author and timestamp that the broker put first (see
// rooms.Message), or the payload as is (a binary room's).
func unenrich(payload []byte, id uint64, author, timestamp string) []byte {
	a, err := json.Marshal(author)
	if err != nil {
		return payload
	}
	prefix := make([]byte, 0, 64+len(a))
	prefix = append(prefix, `{"id":`...)
	prefix = strconv.AppendUint(prefix, id, 10)
	prefix = append(prefix, `,"author":`...)
	prefix = append(prefix, a...)
	prefix = append(prefix, `,"timestamp":`...)
	prefix = append(prefix, timestamp...)
	switch rest := payload[min(len(prefix), len(payload)):]; {
	case !bytes.HasPrefix(payload, prefix):
		return payload
	case string(rest) == "}":
		return []byte("{}")
	case len(rest) > 1 && rest[0] == ',':
		return append([]byte{'{'}, rest[1:]...)
	}
	return payload
}

// startOut sets the out position to the local room's last message, unless it is set
// already, and reports whether it is.
func (l *roomLink) startOut(ctx context.Context) bool {
	l.mu.Lock()
	known := l.outKnown
	l.mu.Unlock()
	if known {
		return true
	}
	info, err := l.b.rooms.HistoryInfo(ctx, l.m.Local)
	if err != nil {
		l.b.fail(err)
		l.b.log.Warn("bridge: local room not readable; trying again", logKeyRoom, l.m.Local, logKeyError, err)
		return false
	}
	l.mu.Lock()
	l.outPos, l.outKnown = info.LastMessageID, true
	l.mu.Unlock()
	return true
}

// runOut carries the local room's messages to the far side through c until ctx ends, from
// the out position (the room's last message when the bridge started).
func (l *roomLink) runOut(ctx context.Context, c *client.Client) {
	b := l.b
	wake := make(chan struct{}, 1)
	kick := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	tick := time.NewTicker(b.poll)
	defer tick.Stop()
	for !l.startOut(ctx) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
	if b.feed != nil {
		cancel, err := b.feed.SubscribeRoom(ctx, l.m.Local, func(store.Message, string) { kick() })
		if err != nil {
			b.log.Warn("bridge: no feed of the local room; polling", logKeyRoom, l.m.Local, logKeyError, err)
		} else {
			defer cancel()
		}
	}
	for {
		l.mu.Lock()
		s, member, changed := l.sess, l.member, l.changed
		l.mu.Unlock()
		if s == nil || s.ctx.Err() != nil || !member {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		if !l.sync(c, s) {
			continue // the connection went, or the room was left
		}
		l.pump(ctx, c, s, wake, tick.C)
		if s.ctx.Err() == nil {
			// A publish failed on a connection that looks up (the client may not have noticed
			// the loss yet): try again a moment later, or at once on the next connection.
			select {
			case <-time.After(b.cfg.ReconnectMin):
			case <-s.ctx.Done():
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}
}

// sync makes sure, once per connection s, that a message published on an earlier one but
// not acknowledged is not sent again when the far side has it: it waits for the far side's
// replay up to the remote room's last message, which shows what the far side stored from us
// (handle moves confirmed). It returns false when s ended meanwhile.
func (l *roomLink) sync(c *client.Client, s *session) bool {
	l.mu.Lock()
	need := l.sent && l.synced != s
	l.mu.Unlock()
	if need {
		sctx, cancel := context.WithTimeout(s.ctx, setupTimeout)
		defer cancel()
		info, err := c.RoomHistoryInfo(sctx, l.m.Remote)
		if err != nil {
			if s.ctx.Err() != nil {
				return false
			}
			l.b.fail(err)
			l.b.log.Warn("bridge: far side's last message not read; a message may be sent twice", logKeyRoom, l.m.Local, logKeyError, err)
		} else {
			l.b.log.Debug("bridge: waiting for the far side's replay", logKeyRoom, l.m.Remote, "last", info.LastMessageID)
			if err := l.awaitIn(sctx, info.LastMessageID, info.Epoch); err != nil {
				if s.ctx.Err() != nil {
					return false
				}
				l.b.log.Warn("bridge: far side's replay not seen; a message may be sent twice", logKeyRoom, l.m.Local, logKeyError, err)
			}
		}
	}
	l.mu.Lock()
	l.synced = s
	l.mu.Unlock()
	l.b.log.Debug("bridge: sending", logKeyRoom, l.m.Local)
	return s.ctx.Err() == nil
}

// pump publishes the local messages after outPos on s, in id order, until s's connection
// ends or fails.
func (l *roomLink) pump(ctx context.Context, c *client.Client, s *session, wake <-chan struct{}, tick <-chan time.Time) {
	b := l.b
	for {
		l.mu.Lock()
		after := l.outPos
		l.mu.Unlock()
		msgs, err := b.rooms.History(s.ctx, l.m.Local, after, 0)
		if err != nil && s.ctx.Err() == nil {
			b.fail(err)
			b.log.Warn("bridge: read local history", logKeyRoom, l.m.Local, logKeyError, err)
		}
		if len(msgs) == 0 {
			select {
			case <-wake:
			case <-tick:
			case <-s.ctx.Done():
				return
			case <-ctx.Done():
				return
			}
			continue
		}
		if first := msgs[0].ID; first > after+1 {
			b.log.Warn("bridge: local messages left the history before they were bridged", logKeyRoom, l.m.Local, "from", after+1, "to", first-1)
		}
		for _, m := range msgs {
			if !l.publish(c, s, m) {
				return
			}
		}
	}
}

// publish sends m to the far side unless it must not go there, and moves outPos over it. It
// returns false when the connection failed (m is to be sent again on the next one).
func (l *roomLink) publish(c *client.Client, s *session, m *rooms.Message) bool {
	b := l.b
	l.mu.Lock()
	skip := m.OriginBroker == b.cfg.Name || // came from the far side
		(m.OriginBroker != "" && m.Author == b.cfg.LocalUser) // brought in by this bridge
	if !skip && m.ID <= l.confirmed {
		// The far side stored it though its PUBACK was lost: it went out.
		skip = true
		b.out.Add(1)
	}
	if !skip {
		l.sent = true
	}
	l.mu.Unlock()
	if !skip {
		opts := client.SendOptions{OriginBroker: m.OriginBroker, OriginID: m.OriginID, OriginEpoch: m.Epoch}
		if opts.OriginBroker == "" {
			opts.OriginBroker, opts.OriginID = b.cfg.LocalName, m.ID
		}
		// Bounded by the connection: a PUBACK lost with it must not hold the room.
		err := c.SendWith(s.ctx, l.m.Remote, m.Message.Payload, opts)
		var refused *client.PublishError
		switch {
		case errors.As(err, &refused):
			b.dropped.Add(1)
			b.fail(err)
			b.log.Warn("bridge: message refused by the far side; dropped", logKeyRoom, l.m.Local, logKeyID, m.ID, logKeyError, err)
		case err != nil:
			b.fail(err)
			b.log.Info("bridge: publish failed; resending after reconnect", logKeyRoom, l.m.Local, logKeyID, m.ID, logKeyError, err)
			return false
		default:
			b.out.Add(1)
		}
	}
	l.mu.Lock()
	l.outPos = max(l.outPos, m.ID)
	l.mu.Unlock()
	return true
}
