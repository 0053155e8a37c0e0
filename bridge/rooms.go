package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// User properties of room deliveries and resume subscriptions (docs/protocol.md).
const (
	propID        = "id"
	propAuthor    = "author"
	propTimestamp = "timestamp"
	propEpoch     = "epoch"
	propSince     = "since"
)

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

	// procMu serialises the handling of remote messages (lock order: procMu, then mu).
	procMu sync.Mutex
	mu     sync.Mutex
	// held are the remote messages that arrived before the first position was known.
	held []*paho.Publish
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
	// whether the far side stored the last one.
	sent bool
	// ready is the connection the out direction may publish on, nil while there is none;
	// readyCh is closed, and replaced, when it changes.
	ready   *session
	readyCh chan struct{}
	// joined is true while the remote room is subscribed on the current connection.
	joined bool
}

// session is a connection to the far side that the out direction may use until ctx ends.
type session struct {
	ctx context.Context
	cm  *autopaho.ConnectionManager
}

func newRoomLink(b *Bridge, m RoomMapping) *roomLink {
	return &roomLink{b: b, m: m, moved: make(chan struct{}), readyCh: make(chan struct{})}
}

// status returns the mapping's positions.
func (l *roomLink) status() RoomStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return RoomStatus{Local: l.m.Local, Remote: l.m.Remote, Direction: l.m.Direction, Joined: l.joined, LastOut: l.outPos, LastIn: l.inPos, RemoteEpoch: l.inEpoch}
}

// setReady sets the connection the out direction may use. Lock mu must be held.
func (l *roomLink) setReadyLocked(s *session) {
	l.ready = s
	close(l.readyCh)
	l.readyCh = make(chan struct{})
}

// setup joins the remote room on a new connection, resuming after the last remote message
// handled, and then lets the out direction go on; ctx is the connection's, sctx bounds the
// setup.
func (l *roomLink) setup(ctx, sctx context.Context, r *remote, cm *autopaho.ConnectionManager) error {
	l.mu.Lock()
	known := l.inKnown
	var props paho.UserProperties
	if known {
		props = paho.UserProperties{{Key: propSince, Value: strconv.FormatUint(l.inPos, 10)}}
		if l.inEpoch != "" {
			props = append(props, paho.UserProperty{Key: propEpoch, Value: l.inEpoch})
		}
	}
	sent := l.sent
	l.mu.Unlock()
	if err := subscribe(sctx, cm, props, paho.SubscribeOptions{Topic: wire.RoomTopic(l.m.Remote), QoS: 1}); err != nil {
		return err
	}
	var info rooms.HistoryInfo
	if !known {
		// First connection: a live join (roomHistoryInfo needs one), starting after the
		// remote room's last message; the messages that arrived meanwhile were held.
		if err := r.call(sctx, cm, "roomHistoryInfo", map[string]string{"room": l.m.Remote}, &info); err != nil {
			return err
		}
		l.procMu.Lock()
		l.mu.Lock()
		l.inKnown, l.inPos, l.inEpoch = true, info.LastMessageID, info.Epoch
		held := l.held
		l.held = nil
		l.mu.Unlock()
		for _, p := range held {
			l.handle(r.ctx, p)
		}
		l.procMu.Unlock()
	}
	l.mu.Lock()
	l.joined = ctx.Err() == nil
	l.mu.Unlock()
	l.b.log.Debug("bridge: remote room joined", logKeyRoom, l.m.Remote, "since", props.Get(propSince))
	if !l.m.Direction.out() {
		return nil
	}
	if sent {
		// The link dropped with a message maybe stored there but not acknowledged: wait for
		// the replay up to the remote room's last message, which shows what the far side has
		// from us (handle moves confirmed).
		if err := r.call(sctx, cm, "roomHistoryInfo", map[string]string{"room": l.m.Remote}, &info); err != nil {
			return err
		}
		l.b.log.Debug("bridge: waiting for the far side's replay", logKeyRoom, l.m.Remote, "last", info.LastMessageID)
		if err := l.awaitIn(sctx, info.LastMessageID, info.Epoch); err != nil {
			l.b.log.Warn("bridge: far side's replay not seen; a message may be sent twice", logKeyRoom, l.m.Local, logKeyError, err)
		}
	}
	l.mu.Lock()
	l.setReadyLocked(&session{ctx: ctx, cm: cm})
	l.mu.Unlock()
	l.b.log.Debug("bridge: sending", logKeyRoom, l.m.Local)
	return nil
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
	l.inPos = id
	close(l.moved)
	l.moved = make(chan struct{})
}

// fromRemote handles a message of the remote room, or holds it while the first join waits
// for its position.
func (l *roomLink) fromRemote(ctx context.Context, p *paho.Publish) {
	l.mu.Lock()
	if !l.inKnown {
		l.held = append(l.held, p)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	l.procMu.Lock()
	defer l.procMu.Unlock()
	l.handle(ctx, p)
}

// handle handles a message of the remote room: one that came from here moves the out
// confirmation, one from elsewhere is posted to the local room (with the in direction).
// Messages are handled once each, in id order. Lock procMu must be held.
func (l *roomLink) handle(ctx context.Context, p *paho.Publish) {
	b := l.b
	if p.Properties == nil {
		return
	}
	up := p.Properties.User
	id, err := strconv.ParseUint(up.Get(propID), 10, 64)
	if err != nil {
		b.log.Warn("bridge: remote room message without an id", logKeyRoom, l.m.Remote)
		return
	}
	epoch := up.Get(propEpoch)
	from, oerr := wire.ParseOrigin(up.Get(wire.PropOriginBroker), up.Get(wire.PropOriginID), "")
	l.mu.Lock()
	if epoch != "" && l.inEpoch != "" && epoch != l.inEpoch {
		b.log.Warn("bridge: remote room history started again", logKeyRoom, l.m.Remote, propEpoch, epoch)
		l.inPos = 0
	}
	if epoch != "" {
		l.inEpoch = epoch
	}
	if id <= l.inPos {
		l.mu.Unlock()
		return // replayed again
	}
	if id > l.inPos+1 && l.inPos > 0 {
		b.log.Warn("bridge: remote messages left the history before they were bridged", logKeyRoom, l.m.Remote, "from", l.inPos+1, "to", id-1)
	}
	if oerr == nil && from.Broker == b.cfg.LocalName {
		// Our own message, stored there: never brought back.
		l.confirmed = max(l.confirmed, from.ID)
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
	if oerr != nil || from.Broker == "" {
		from = wire.Origin{Broker: b.cfg.Name, ID: id}
	}
	from.Epoch = epoch // the remote room's: its ids grow within it
	content := unenrich(p.Payload, id, up.Get(propAuthor), up.Get(propTimestamp))
	caller := commands.Caller{Identity: acl.Identity{User: b.cfg.LocalUser}}
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

// runOut carries the local room's messages to the far side until ctx ends, from the room's
// last message when it starts.
func (l *roomLink) runOut(ctx context.Context) {
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
		s, changed := l.ready, l.readyCh
		l.mu.Unlock()
		if s == nil || s.ctx.Err() != nil {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		l.pump(ctx, s, wake, tick.C)
		if s.ctx.Err() == nil {
			// A publish failed on a connection that looks up (autopaho may not have noticed
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

// pump publishes the local messages after outPos on s, in id order, until s's connection
// ends or fails.
func (l *roomLink) pump(ctx context.Context, s *session, wake <-chan struct{}, tick <-chan time.Time) {
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
			if !l.publish(s, m) {
				return
			}
		}
	}
}

// publish sends m to the far side unless it must not go there, and moves outPos over it. It
// returns false when the connection failed (m is to be sent again on the next one).
func (l *roomLink) publish(s *session, m *rooms.Message) bool {
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
		originBroker, originID := m.OriginBroker, m.OriginID
		if originBroker == "" {
			originBroker, originID = b.cfg.LocalName, m.ID
		}
		pr, err := s.cm.Publish(s.ctx, &paho.Publish{
			Topic: wire.RoomTopic(l.m.Remote), QoS: 1, Payload: m.Message.Payload,
			Properties: &paho.PublishProperties{User: paho.UserProperties{
				{Key: wire.PropOriginBroker, Value: originBroker},
				{Key: wire.PropOriginID, Value: strconv.FormatUint(originID, 10)},
				{Key: wire.PropOriginEpoch, Value: m.Epoch},
			}},
		})
		switch {
		case pr != nil && pr.ReasonCode >= 0x80:
			b.dropped.Add(1)
			reason := ""
			if pr.Properties != nil {
				reason = pr.Properties.ReasonString
			}
			refused := errors.New("far side refused room message: " + strconv.Itoa(int(pr.ReasonCode)) + " " + reason)
			b.fail(refused)
			b.log.Warn("bridge: message refused by the far side; dropped", logKeyRoom, l.m.Local, logKeyID, m.ID, logKeyError, refused)
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
