package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// Defaults of Options.
const (
	DefaultHistoryMaxSize        = 10000
	DefaultHistoryMaxGetMessages = 100
	replayBatch                  = 1000
)

// Subscriber receives the messages of a room on this instance. The Service calls its methods
// with the room's lock held, in id order: they must not block and must not call back into the
// Service.
type Subscriber interface {
	// Key identifies the subscription; one key holds at most one subscription per room.
	Key() string
	// DeliverRoom queues m for the subscriber.
	DeliverRoom(m *Message)
	// RoomRemoved tells the subscriber it no longer belongs to room (the room was deleted or
	// the user lost access), so that it can drop its transport-level subscription.
	RoomRemoved(room string)
}

// Notifier publishes the broker's notifications. It must not block.
type Notifier interface {
	// RoomEvent publishes ev on rooms/{room}/events.
	RoomEvent(room string, ev wire.Event)
	// UserEvent publishes ev on users/{user}/events.
	UserEvent(user string, ev wire.Event)
	// UserRemoved tells the other instances that user lost access to room: they drop the
	// user's subscribers there (DropUser).
	UserRemoved(room, user string)
}

// Options configure a Service.
type Options struct {
	// Store keeps rooms, histories and membership. Required.
	Store store.Store
	// Checkers holds the message checkers; nil means NewCheckers().
	Checkers *Checkers
	// Notifier publishes events. Required.
	Notifier Notifier
	// HistoryMaxSize is the number of messages a room history keeps (default 10000).
	HistoryMaxSize int
	// HistoryMaxGetMessages caps one history read (default 100).
	HistoryMaxGetMessages int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives the service's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Service runs the rooms of one broker instance.
type Service struct {
	store    store.Store
	checkers *Checkers
	notify   Notifier
	maxSize  int
	maxGet   int
	now      func() time.Time
	log      *slog.Logger

	mu    sync.Mutex
	rooms map[string]*roomState
}

// roomState is the per-instance state of one room.
type roomState struct {
	// mu serialises id assignment with delivery, and joins with delivery, so that every
	// subscriber sees the room's messages in id order with no gap between replay and live.
	mu    sync.Mutex
	epoch string
	subs  map[string]subscription // by Subscriber.Key
	// last is the id of the last message delivered to subs, and cancelFeed ends the room's
	// feed subscription; both are set while the room has subscribers here (sequencer.go).
	last       uint64
	cancelFeed func()

	// postMu guards the queue of posts waiting for a commit (commit), and whether a poster
	// is committing. It is never held with mu.
	postMu     sync.Mutex
	posts      []*post
	committing bool
	// bridged holds, by origin broker and origin epoch, the last origin id of the bridged messages
	// posted here, to drop those a bridge sends twice (this instance only; not persisted).
	bridged map[string]uint64
}

// subscription is a subscriber of a room on this instance and whose it is.
type subscription struct {
	Subscriber
	user     string
	clientID string
}

// New returns a Service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("rooms: Options.Store is required")
	}
	if opts.Notifier == nil {
		return nil, errors.New("rooms: Options.Notifier is required")
	}
	if opts.Checkers == nil {
		opts.Checkers = NewCheckers()
	}
	if opts.HistoryMaxSize <= 0 {
		opts.HistoryMaxSize = DefaultHistoryMaxSize
	}
	if opts.HistoryMaxGetMessages <= 0 {
		opts.HistoryMaxGetMessages = DefaultHistoryMaxGetMessages
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Service{
		store:    opts.Store,
		checkers: opts.Checkers,
		notify:   opts.Notifier,
		maxSize:  opts.HistoryMaxSize,
		maxGet:   opts.HistoryMaxGetMessages,
		now:      opts.Now,
		log:      opts.Logger,
		rooms:    make(map[string]*roomState),
	}, nil
}

// Checkers returns the checker registry, to register custom checkers.
func (s *Service) Checkers() *Checkers { return s.checkers }

// HistoryMaxGetMessages is the most messages one history read returns.
func (s *Service) HistoryMaxGetMessages() int { return s.maxGet }

func (s *Service) state(room string) *roomState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.rooms[room]
	if !ok {
		st = &roomState{subs: make(map[string]subscription)}
		s.rooms[room] = st
	}
	return st
}

func (s *Service) millis() int64 { return s.now().UnixMilli() }

// Create creates a room owned by owner. An empty checker means text.
func (s *Service) Create(ctx context.Context, room store.Room) error {
	if err := wire.CheckName("room", room.Name); err != nil {
		return err
	}
	if room.Checker == "" {
		room.Checker = CheckerText
	}
	if _, ok := s.checkers.Get(room.Checker); !ok {
		return fmt.Errorf("create room %q: %w", room.Name, wire.Errorf(wire.CodeBadArgument, "checker: no checker named %q", room.Checker))
	}
	if room.CreatedAt == 0 {
		room.CreatedAt = s.millis()
	}
	if err := s.store.CreateRoom(ctx, room); err != nil {
		return fmt.Errorf("create room %q: %w", room.Name, err)
	}
	return nil
}

// Room returns a room's settings, or store.ErrNoRoom.
func (s *Service) Room(ctx context.Context, name string) (store.Room, error) {
	if !wire.ValidName(name) {
		return store.Room{}, wire.Errorf(wire.CodeInvalidName, "invalid room name %q", name)
	}
	r, err := s.store.Room(ctx, name)
	if err != nil {
		return store.Room{}, fmt.Errorf("room %q: %w", name, err)
	}
	return r, nil
}

// Delete deletes a room: its members get roomDeleted, their subscriptions on this instance end,
// and its history is gone.
func (s *Service) Delete(ctx context.Context, name string) error {
	users, err := s.store.RoomUsers(ctx, name)
	if err != nil {
		return fmt.Errorf("delete room %q: %w", name, err)
	}
	st := s.state(name)
	st.mu.Lock()
	if err := s.store.DeleteRoom(ctx, name); err != nil {
		st.mu.Unlock()
		return fmt.Errorf("delete room %q: %w", name, err)
	}
	subs := st.subs
	st.subs = make(map[string]subscription)
	st.epoch = ""
	stop := untrackLocked(st)
	st.mu.Unlock()
	stop()

	s.mu.Lock()
	delete(s.rooms, name)
	s.mu.Unlock()

	for _, sub := range subs {
		sub.RoomRemoved(name)
	}
	ev := wire.NewEvent(wire.EventRoomDeleted, map[string]any{"room": name})
	s.notify.RoomEvent(name, ev)
	for _, u := range users {
		s.notify.UserEvent(u, ev)
	}
	return nil
}

// Post validates payload with the room's checker, stores it with the next id and delivers it to
// the room's subscribers on this instance, in id order; other instances get it through the
// store's feed. origin is the publishing client id. The returned message's Epoch is empty when
// the room has no subscriber on this instance (it is not looked up just for the answer).
func (s *Service) Post(ctx context.Context, room, author, origin string, payload []byte) (*Message, error) {
	r, err := s.Room(ctx, room)
	if err != nil {
		return nil, err
	}
	return s.PostIn(ctx, r, author, origin, payload)
}

// PostIn is Post for a caller that has just read the room's settings (for a permission
// check): it saves reading them again.
func (s *Service) PostIn(ctx context.Context, r store.Room, author, origin string, payload []byte) (*Message, error) {
	return s.PostBridged(ctx, r, author, origin, payload, wire.Origin{})
}

// PostBridged is PostIn for a message that a bridge brings from another broker: it is stored
// with the name of the broker where it was first posted and its id there (from, the zero
// Origin for a message posted here), which its deliveries carry as user properties
// origin-broker and origin-id. A message of the same origin broker and epoch as one posted
// before, with its id or an earlier one, is refused with ErrDuplicate.
func (s *Service) PostBridged(ctx context.Context, r store.Room, author, origin string, payload []byte, from wire.Origin) (*Message, error) {
	wait, err := s.EnqueueBridged(r, author, origin, payload, from)
	if err != nil {
		return nil, err
	}
	return wait(ctx)
}

// EnqueueBridged checks a post as PostBridged does and gives it its place in the room's queue,
// without waiting for it to be stored: wait, which must be called once, waits for it (taking
// its turn as the committer when it comes) and returns what PostBridged returns. Posts queued
// one after the other are stored and delivered in that order, so that a connection can have
// several posts on their way and still keep their order.
func (s *Service) EnqueueBridged(r store.Room, author, origin string, payload []byte, from wire.Origin) (wait func(context.Context) (*Message, error), err error) {
	room := r.Name
	if r.MaxMessageSize > 0 && len(payload) > r.MaxMessageSize {
		return nil, &SizeError{Room: room, Size: len(payload), Limit: r.MaxMessageSize}
	}
	checker, ok := s.checkers.Get(r.Checker)
	if !ok {
		return nil, fmt.Errorf("post to room %q: %w: %q", room, ErrNoChecker, r.Checker)
	}
	content, binary, err := check(checker, payload)
	if err != nil {
		return nil, fmt.Errorf("post to room %q: %w", room, err)
	}
	p := &post{
		msg: store.Message{
			Author:       author,
			Binary:       binary,
			Payload:      content,
			OriginBroker: from.Broker,
			OriginID:     from.ID,
		},
		origin: origin,
		from:   from,
		done:   make(chan postResult, 1),
		lead:   make(chan struct{}, 1),
	}
	st := s.state(room)
	st.postMu.Lock()
	st.posts = append(st.posts, p)
	lead := !st.committing
	st.committing = true
	st.postMu.Unlock()
	return func(ctx context.Context) (*Message, error) {
		if !lead {
			select {
			case res := <-p.done:
				return res.msg, res.err
			case <-p.lead: // the committer before handed over with this post first in line
			}
		}
		s.commit(ctx, room, st)
		res := <-p.done
		return res.msg, res.err
	}, nil
}

// Group commit. Posts to a room queue up; one poster at a time, the committer, appends what
// is queued in one AppendBatch (one round trip to Redis for up to maxCommit messages) and
// delivers it under the room's lock, then hands over to the first poster still waiting. So a
// room's posts are stored and delivered in order, and under load each round trip carries
// many of them.

// maxCommit is the most posts one commit appends.
const maxCommit = 128

// commitTimeout bounds one commit, whoever's context it runs on.
const commitTimeout = 10 * time.Second

// post is a message waiting in its room's queue.
type post struct {
	msg    store.Message
	origin string
	from   wire.Origin
	done   chan postResult // its result, once
	lead   chan struct{}   // becoming the committer
}

type postResult struct {
	msg *Message
	err error
}

// commit appends and delivers the queued posts of a room (at most maxCommit), answers each,
// and hands over to the next poster when more are queued.
func (s *Service) commit(ctx context.Context, room string, st *roomState) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	st.postMu.Lock()
	n := min(len(st.posts), maxCommit)
	batch := st.posts[:n:n]
	st.posts = st.posts[n:]
	if len(st.posts) == 0 {
		st.posts = nil // let the committed posts go
	}
	st.postMu.Unlock()

	st.mu.Lock()
	results := make([]postResult, len(batch))
	var pending []store.Message
	var index []int // the batch index of each of pending
	seen := make(map[string]uint64)
	for i, p := range batch {
		if p.from.Broker == "" {
			pending, index = append(pending, p.msg), append(index, i)
			continue
		}
		key := p.from.Broker + "\x00" + p.from.Epoch
		last, ok := seen[key]
		if !ok {
			last = st.bridged[key]
		}
		if p.from.ID <= last {
			// Sent again (a PUBACK lost with the link, a packet of a dead connection read
			// late, or the same message by a second bridge): the ids of one origin and epoch
			// (one room's history) arrive in order along every bridge.
			results[i].err = fmt.Errorf("post to room %q: %w: %s %d", room, ErrDuplicate, p.from.Broker, p.from.ID)
			continue
		}
		seen[key] = p.from.ID
		pending, index = append(pending, p.msg), append(index, i)
	}
	now := s.millis()
	for i := range pending {
		pending[i].Timestamp = now
	}
	var stored []store.Message
	var err error
	if len(pending) > 0 {
		stored, err = s.store.AppendBatch(ctx, room, pending, s.maxSize)
	}
	for k, m := range stored {
		p := batch[index[k]]
		if p.from.Broker != "" {
			if st.bridged == nil {
				st.bridged = make(map[string]uint64)
			}
			st.bridged[p.from.Broker+"\x00"+p.from.Epoch] = p.from.ID
		}
		s.deliverLocked(ctx, room, st, m, p.origin)
		results[index[k]].msg = NewMessage(room, st.epoch, p.origin, m)
	}
	for k := len(stored); k < len(index); k++ {
		results[index[k]].err = fmt.Errorf("post to room %q: %w", room, err)
	}
	st.mu.Unlock()

	for i, p := range batch {
		p.done <- results[i]
	}
	st.postMu.Lock()
	if len(st.posts) > 0 {
		st.posts[0].lead <- struct{}{}
	} else {
		st.committing = false
	}
	st.postMu.Unlock()
}

// check runs a checker. Any error it returns is a refusal (badMessage); a panic of a custom
// checker becomes an internal error, so that one bad checker cannot bring the broker down.
func check(c Checker, payload []byte) (content []byte, binary bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			content, binary, err = nil, false, fmt.Errorf("checker panicked: %v", p)
		}
	}()
	content, binary, err = c.Check(payload)
	if err != nil && !errors.Is(err, ErrBadMessage) {
		err = fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	return content, binary, err
}

// Resume asks a join to replay the history after a message id.
type Resume struct {
	// Since is the last message id the client has; replay starts after it.
	Since uint64
	// Epoch is the epoch the client's Since belongs to; empty means unknown.
	Epoch string
}

// Join is a request to join a room.
type Join struct {
	Room     string
	User     string
	ClientID string
	// Subscriber receives the room's messages on this instance; nil joins without delivery
	// (for a connection on another transport).
	Subscriber Subscriber
	// Resume, when set, replays the stored messages after Resume.Since before live ones.
	Resume *Resume
}

// Joined reports the outcome of a join or leave.
type Joined struct {
	// Connections is the number of the user's connections joined to the room afterwards.
	Connections int
	// Changed is false when the connection was joined (or left) already.
	Changed bool
	// After and Epoch say where the joined subscriber stands in the history: it gets every
	// message with an id greater than After (replayed or live) of epoch Epoch.
	After uint64
	Epoch string
}

// Join records a connection's membership, replays history when asked and adds the subscriber,
// all under the room's lock so that nothing is missed or doubled between replay and live
// messages. It sends historyGap or historyReset to the user when the replay cannot continue
// from Resume.Since, roomJoinedEcho to the user, and userJoined to the room when this is the
// user's first connection there and the room wants userlist updates.
func (s *Service) Join(ctx context.Context, j Join) (Joined, error) {
	r, err := s.Room(ctx, j.Room)
	if err != nil {
		return Joined{}, err
	}
	st := s.state(j.Room)
	st.mu.Lock()
	count, changed, err := s.store.Join(ctx, j.Room, j.User, j.ClientID, s.millis())
	if err != nil {
		st.mu.Unlock()
		return Joined{}, fmt.Errorf("join room %q: %w", j.Room, err)
	}
	joined := Joined{Connections: count, Changed: changed}
	if j.Subscriber != nil {
		// A new subscription of the same key (a resubscription) replaces the old one; the
		// catch-up below must not reach the old one too.
		delete(st.subs, j.Subscriber.Key())
		info, err := s.trackLocked(ctx, j.Room, st)
		if err == nil {
			joined.After, joined.Epoch = info.LastID, info.Epoch
			if j.Resume != nil {
				joined.After, err = s.replayLocked(ctx, st, j, info)
			}
		}
		if err == nil {
			// The other subscribers here get what this one was replayed, so that from now on
			// all of them get the same live messages.
			s.catchUpLocked(ctx, j.Room, st, info.LastID)
		}
		if err != nil {
			if _, _, lerr := s.store.Leave(ctx, j.Room, j.User, j.ClientID, s.millis()); lerr != nil {
				s.log.Error("undo join", "room", j.Room, "client", j.ClientID, "error", lerr)
			}
			stop := untrackLocked(st)
			st.mu.Unlock()
			stop()
			return Joined{}, fmt.Errorf("join room %q: %w", j.Room, err)
		}
		st.subs[j.Subscriber.Key()] = subscription{Subscriber: j.Subscriber, user: j.User, clientID: j.ClientID}
	}
	st.mu.Unlock()

	if changed {
		s.notify.UserEvent(j.User, wire.NewEvent(wire.EventRoomJoinedEcho, map[string]any{
			"room": j.Room, "clientId": j.ClientID, "connections": count,
		}))
		if count == 1 && r.NotifyUserlist {
			s.notify.RoomEvent(j.Room, wire.NewEvent(wire.EventUserJoined, map[string]any{"room": j.Room, "user": j.User}))
		}
	}
	return joined, nil
}

// replayLocked delivers the stored messages after j.Resume.Since up to info.LastID to
// j.Subscriber, and returns the id after which the subscriber is to get every message. Lock
// st.mu must be held.
func (s *Service) replayLocked(ctx context.Context, st *roomState, j Join, info store.HistoryInfo) (uint64, error) {
	after := j.Resume.Since
	switch {
	case j.Resume.Epoch != "" && j.Resume.Epoch != info.Epoch:
		s.notify.UserEvent(j.User, wire.NewEvent(wire.EventHistoryReset, map[string]any{
			"room": j.Room, "epoch": info.Epoch,
		}))
		after = 0
	case info.FirstID > 0 && after+1 < info.FirstID:
		s.notify.UserEvent(j.User, wire.NewEvent(wire.EventHistoryGap, map[string]any{
			"room": j.Room, "from": after + 1, "to": info.FirstID - 1,
		}))
	case info.FirstID == 0 && after < info.LastID:
		// Everything after Since has left the history ring.
		s.notify.UserEvent(j.User, wire.NewEvent(wire.EventHistoryGap, map[string]any{
			"room": j.Room, "from": after + 1, "to": info.LastID,
		}))
	}
	start := after
	for after < info.LastID {
		msgs, err := s.store.Range(ctx, j.Room, after, int(min(info.LastID-after, replayBatch)))
		if err != nil {
			return 0, fmt.Errorf("replay room %q: %w", j.Room, err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			if m.ID > info.LastID {
				break
			}
			j.Subscriber.DeliverRoom(NewMessage(j.Room, info.Epoch, "", m))
		}
		after = msgs[len(msgs)-1].ID
	}
	return start, nil
}

// Leave ends a connection's membership of a room and removes its subscriber (by key, empty
// for none). It sends roomLeftEcho to the user, and userLeft to the room after the user's last
// connection left.
func (s *Service) Leave(ctx context.Context, room, user, clientID, key string) (Joined, error) {
	st := s.state(room)
	st.mu.Lock()
	if key != "" {
		delete(st.subs, key)
	}
	count, changed, err := s.store.Leave(ctx, room, user, clientID, s.millis())
	stop := untrackLocked(st)
	st.mu.Unlock()
	stop()
	if err != nil {
		return Joined{}, fmt.Errorf("leave room %q: %w", room, err)
	}
	if changed {
		s.notify.UserEvent(user, wire.NewEvent(wire.EventRoomLeftEcho, map[string]any{
			"room": room, "clientId": clientID, "connections": count,
		}))
		if count == 0 {
			if r, err := s.store.Room(ctx, room); err == nil && r.NotifyUserlist {
				s.notify.RoomEvent(room, wire.NewEvent(wire.EventUserLeft, map[string]any{"room": room, "user": user}))
			}
		}
	}
	return Joined{Connections: count, Changed: changed}, nil
}

// LeaveRooms makes clientID of user leave every room it has joined, as Leave does: for a
// connection that ended elsewhere (its instance died).
func (s *Service) LeaveRooms(ctx context.Context, user, clientID string) error {
	names, err := s.store.ClientRooms(ctx, clientID)
	if err != nil {
		return fmt.Errorf("rooms of %q: %w", clientID, err)
	}
	var errs []error
	for _, room := range names {
		if _, err := s.Leave(ctx, room, user, clientID, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveUser ends every membership of user in room at once: the user's subscribers on this
// instance stop receiving the room before RemoveUser returns and learn it through
// RoomRemoved, the memberships of all the user's connections end, and the user gets
// roomAccessRemoved. It is what happens to a user who lost access to the room.
func (s *Service) RemoveUser(ctx context.Context, room, user string) error {
	s.DropUser(room, user)
	s.notify.UserRemoved(room, user)
	conns, err := s.store.UserConnections(ctx, user)
	if err != nil {
		return fmt.Errorf("remove %q from room %q: %w", user, room, err)
	}
	for _, c := range conns {
		if _, err := s.Leave(ctx, room, user, c.ClientID, ""); err != nil {
			return fmt.Errorf("remove %q from room %q: %w", user, room, err)
		}
	}
	s.notify.UserEvent(user, wire.NewEvent(wire.EventRoomAccessRemoved, map[string]any{"room": room}))
	return nil
}

// DropUser removes the user's subscribers of room on this instance only, at once: the part of
// RemoveUser that every instance does when told that the user lost access.
func (s *Service) DropUser(room, user string) {
	st := s.state(room)
	st.mu.Lock()
	var removed []subscription
	for key, sub := range st.subs {
		if sub.user == user {
			delete(st.subs, key)
			removed = append(removed, sub)
		}
	}
	stop := untrackLocked(st)
	st.mu.Unlock()
	stop()
	for _, sub := range removed {
		sub.RoomRemoved(room)
	}
}

// HistoryInfo describes a room's history for the roomHistoryInfo command.
type HistoryInfo struct {
	LastMessageID         uint64 `json:"lastMessageId"`
	HistorySize           int    `json:"historySize"`
	HistoryMaxSize        int    `json:"historyMaxSize"`
	HistoryMaxGetMessages int    `json:"historyMaxGetMessages"`
	Epoch                 string `json:"epoch"`
}

// HistoryInfo returns the state of a room's history.
func (s *Service) HistoryInfo(ctx context.Context, room string) (HistoryInfo, error) {
	info, err := s.store.HistoryInfo(ctx, room)
	if err != nil {
		return HistoryInfo{}, fmt.Errorf("history info of room %q: %w", room, err)
	}
	return HistoryInfo{
		LastMessageID:         info.LastID,
		HistorySize:           info.Size,
		HistoryMaxSize:        s.maxSize,
		HistoryMaxGetMessages: s.maxGet,
		Epoch:                 info.Epoch,
	}, nil
}

// History returns the messages with an id greater than after, ascending, at most limit and at
// most HistoryMaxGetMessages of them.
func (s *Service) History(ctx context.Context, room string, after uint64, limit int) ([]*Message, error) {
	if limit <= 0 || limit > s.maxGet {
		limit = s.maxGet
	}
	msgs, err := s.store.Range(ctx, room, after, limit)
	if err != nil {
		return nil, fmt.Errorf("history of room %q: %w", room, err)
	}
	return s.wrap(ctx, room, msgs)
}

// HistoryJSON returns what History returns as the JSON array of the messages' JSON forms (see
// MessageList), encoded in one buffer straight from the store's messages: without copying
// them out of a store that can show them in place (store.RangeViewer), and without wrapping
// each in a Message.
func (s *Service) HistoryJSON(ctx context.Context, room string, after uint64, limit int) (json.RawMessage, error) {
	if limit <= 0 || limit > s.maxGet {
		limit = s.maxGet
	}
	var out json.RawMessage
	encode := func(msgs []store.Message) error {
		out = MessageList(msgs).AppendJSON(make([]byte, 0, MessageList(msgs).JSONSizeHint()))
		return nil
	}
	var err error
	if v, ok := s.store.(store.RangeViewer); ok {
		err = v.ViewRange(ctx, room, after, limit, encode)
	} else {
		var msgs []store.Message
		if msgs, err = s.store.Range(ctx, room, after, limit); err == nil {
			err = encode(msgs)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("history of room %q: %w", room, err)
	}
	return out, nil
}

// RecentJSON returns what Recent returns as the JSON array of the messages' JSON forms (see
// MessageList), encoded in one buffer without wrapping each in a Message.
func (s *Service) RecentJSON(ctx context.Context, room string) (json.RawMessage, error) {
	msgs, err := s.store.Recent(ctx, room, s.maxGet)
	if err != nil {
		return nil, fmt.Errorf("recent history of room %q: %w", room, err)
	}
	return MessageList(msgs).MarshalJSON()
}

// Recent returns the newest HistoryMaxGetMessages messages, ascending.
func (s *Service) Recent(ctx context.Context, room string) ([]*Message, error) {
	msgs, err := s.store.Recent(ctx, room, s.maxGet)
	if err != nil {
		return nil, fmt.Errorf("recent history of room %q: %w", room, err)
	}
	return s.wrap(ctx, room, msgs)
}

func (s *Service) wrap(ctx context.Context, room string, msgs []store.Message) ([]*Message, error) {
	info, err := s.store.HistoryInfo(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("history of room %q: %w", room, err)
	}
	out := make([]*Message, len(msgs))
	for i, m := range msgs {
		out[i] = NewMessage(room, info.Epoch, "", m)
	}
	return out, nil
}

// Users returns the users with a connection joined to the room.
func (s *Service) Users(ctx context.Context, room string) ([]string, error) {
	users, err := s.store.RoomUsers(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("users of room %q: %w", room, err)
	}
	return users, nil
}

// UserSeen reports whether user is joined to room and when they last joined or left it.
func (s *Service) UserSeen(ctx context.Context, room, user string) (joined bool, at int64, err error) {
	joined, at, err = s.store.UserSeen(ctx, room, user)
	if err != nil {
		return false, 0, fmt.Errorf("user seen in room %q: %w", room, err)
	}
	return joined, at, nil
}

// Names returns the names of all rooms, sorted.
func (s *Service) Names(ctx context.Context) ([]string, error) {
	names, err := s.store.RoomNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("room names: %w", err)
	}
	return names, nil
}

// ClientRooms returns the rooms a connection has joined.
func (s *Service) ClientRooms(ctx context.Context, clientID string) ([]string, error) {
	rooms, err := s.store.ClientRooms(ctx, clientID)
	if err != nil {
		return nil, fmt.Errorf("rooms of client %q: %w", clientID, err)
	}
	return rooms, nil
}

// CountOwned returns how many rooms owner owns.
func (s *Service) CountOwned(ctx context.Context, owner string) (int, error) {
	n, err := s.store.CountOwnedRooms(ctx, owner)
	if err != nil {
		return 0, fmt.Errorf("rooms of %q: %w", owner, err)
	}
	return n, nil
}
