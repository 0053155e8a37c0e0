package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The feed of a Redis store.
//
// # Channel
//
// Append publishes every stored message with SPUBLISH on the room's sharded pub/sub channel
//
//	{P:room:NAME}:feed
//
// from its script, so the publication is atomic with the append and costs no round trip. The
// channel has the room's hash tag: in a Cluster it belongs to the slot of the room's keys,
// which Redis requires of a channel published to from a script, and its subscribers connect to
// the master of that slot. (Channels and keys are separate namespaces: no key is called so.)
// Sharded pub/sub needs Redis 7.0 or later, on a single server as in a Cluster.
//
// A message is published as a feed frame: "ID:N:EPOCH" then the message's stored form (see
// encodeMessage), where ID is the message id and N the length of the room's EPOCH, both in
// decimal.
//
// # Subscriptions
//
// Each SubscribeRoom has its own PubSub connection and one goroutine that reads it and calls
// deliver. SubscribeRoom returns once Redis has confirmed the subscription, so every Append
// that starts afterwards is delivered; it also reads the room's last id and epoch, where a
// catch-up (below) starts.
//
// # Guarantees
//
// Each subscription delivers the messages of one epoch at most once each and in increasing id
// order; it drops a message whose id is not above that of the last one it delivered in that
// epoch. (So it also drops the messages appended between the confirmation and the reading of
// the last id in SubscribeRoom: they were appended before it returned.)
//
// While the connection holds, every message appended to the room reaches it: Redis runs the
// scripts of one room one at a time, and a connection keeps the order of what Redis sends on
// it. The connection is replaced by a new one — found through the current Cluster topology —
// when it fails, when a health check (a PING after feedCheckInterval without traffic) gets no
// answer within another interval, or when Redis ends the subscription itself, which a Redis
// 7 Cluster node does when the room's slot moves to another master (a reshard) or when the
// node is turned into a replica. Attempts to subscribe again are repeated with a growing pause
// (feedRetryMin to feedRetryMax) until one succeeds or the subscription is cancelled; they
// stop once the store is closed. What was published in between is lost to pub/sub, so once
// the new subscription is confirmed the goroutine reads the history after the last message it
// delivered (or after the last id read by SubscribeRoom) and delivers those messages before
// any that arrive on the new connection. So a message is lost only when it left the history
// (a trim) or its room was deleted before the subscription came back; a room that was created
// again meanwhile is delivered from the start of its new history. The wait between a failure
// and the catch-up — up to two health-check intervals when the connection dies silently, or
// as long as the Cluster takes to fail over — is when messages come late.
//
// Frames that do not decode — written by another version, say — are skipped without a word:
// the store has no logger, and the caller fills the gap from the history when the next
// message arrives.

// feedSuffix names a room's feed channel after the room's hash tag.
const feedSuffix = "feed"

const (
	// feedCheckInterval is how long a subscription waits without receiving anything before
	// it sends a PING, and then for the answer before it replaces its connection.
	feedCheckInterval = 5 * time.Second
	// feedSubscribeTimeout bounds one attempt to subscribe again, with its catch-up.
	feedSubscribeTimeout = 10 * time.Second
	// feedRetryMin and feedRetryMax bound the pause between two attempts to subscribe again.
	feedRetryMin = 50 * time.Millisecond
	feedRetryMax = 2 * time.Second
	// feedCatchUpBatch is the largest number of messages that one catch-up read returns.
	feedCatchUpBatch = 500
)

// feedCatchUpScript reads the history after an id, with the epoch. KEYS: the room's settings
// hash and history list. ARGV: the id after which to start, the largest number of messages.
// Returns {} when the room does not exist, else {epoch, id of the first message returned,
// messages...}.
var feedCatchUpScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'last', 'epoch')
if not v[1] then
	return {}
end
local epoch = v[2] or ''
local last = tonumber(v[1])
local n = redis.call('LLEN', KEYS[2])
local after, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if n == 0 or after >= last then
	return {epoch, 0}
end
local first = last - n + 1
local start = math.max(after + 1, first)
local count = math.min(limit, last - start + 1)
local msgs = redis.call('LRANGE', KEYS[2], start - first, start - first + count - 1)
table.insert(msgs, 1, start)
table.insert(msgs, 1, epoch)
return msgs
`)

// feedChannel returns the name of room's feed channel, in the room's hash tag.
func (r *Redis) feedChannel(room string) string {
	return r.roomKey(room, feedSuffix)
}

// SubscribeRoom implements Feed on Redis sharded pub/sub. It returns once Redis has confirmed
// the subscription; ctx bounds that wait only, not the subscription. It returns an error
// wrapping ErrUnavailable when Redis cannot be reached, and subscribes to a room that does not
// exist (yet) like to any other. The subscription holds a connection of its own until cancel
// is called; cancel must not be called from deliver. See the comment at the top of
// redis_feed.go for what happens when the connection fails.
func (r *Redis) SubscribeRoom(ctx context.Context, room string, deliver func(Message, string)) (func(), error) {
	const op = "subscribe room"
	channel := r.feedChannel(room)
	ps, err := r.feedSubscribe(ctx, op, channel)
	if err != nil {
		return nil, err
	}
	// Where a catch-up starts when no message has been delivered yet.
	info, err := r.HistoryInfo(ctx, room)
	if err != nil && !errors.Is(err, ErrNoRoom) {
		_ = ps.Close()
		return nil, err
	}
	subCtx, stop := context.WithCancel(context.Background())
	s := &redisFeedSub{
		r:       r,
		room:    room,
		channel: channel,
		deliver: deliver,
		ctx:     subCtx,
		stop:    stop,
		exited:  make(chan struct{}),
		ps:      ps,
		epoch:   info.Epoch,
		last:    info.LastID,
	}
	go s.run()
	var once sync.Once
	return func() { once.Do(s.cancel) }, nil
}

// feedSubscribe opens a PubSub subscribed to channel and waits for Redis to confirm the
// subscription.
func (r *Redis) feedSubscribe(ctx context.Context, op, channel string) (*redis.PubSub, error) {
	ps := r.client.SSubscribe(ctx) // no channel: no connection yet, so no error lost
	err := ps.SSubscribe(ctx, channel)
	for err == nil {
		var v any
		v, err = ps.ReceiveTimeout(ctx, feedSubscribeTimeout)
		if sub, ok := v.(*redis.Subscription); ok && sub.Kind == "ssubscribe" && sub.Channel == channel {
			return ps, nil
		}
	}
	_ = ps.Close()
	return nil, r.feedError(ctx, op, err)
}

// feedError wraps an error of subscribing like redisError does, and also with ErrUnavailable
// when a Cluster node answered that another node serves the channel's slot: the client's view
// of the Cluster is out of date (a failover or a slot migration), which it is told to reload.
func (r *Redis) feedError(ctx context.Context, op string, err error) error {
	var reply redis.Error
	if errors.As(err, &reply) && !isContextError(err) {
		if msg := reply.Error(); strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ") {
			if c, ok := r.client.(*redis.ClusterClient); ok {
				c.ReloadState(ctx)
			}
			return fmt.Errorf("store: redis: %s: %w: %w", op, ErrUnavailable, err)
		}
	}
	return redisError(op, err)
}

// redisFeedSub is one subscription of SubscribeRoom.
type redisFeedSub struct {
	r       *Redis
	room    string
	channel string
	deliver func(Message, string)
	ctx     context.Context // ends when the subscription is cancelled
	stop    context.CancelFunc
	exited  chan struct{} // closed when run returns

	mu     sync.Mutex
	ps     *redis.PubSub // the current PubSub, nil while there is none
	closed bool          // set by cancel

	// Owned by run.
	epoch string // the epoch of the last message delivered, or the room's when subscribing
	last  uint64 // the id of the last message delivered in epoch, or the room's last id then
}

// cancel ends the subscription: it closes the PubSub, which ends the subscription on the
// server and interrupts a wait for a message, and waits until run has returned.
func (s *redisFeedSub) cancel() {
	s.mu.Lock()
	s.closed = true
	ps := s.ps
	s.ps = nil
	s.mu.Unlock()
	s.stop()
	if ps != nil {
		_ = ps.Close()
	}
	<-s.exited
}

// install makes ps the current PubSub, unless the subscription was cancelled: then it closes
// ps and returns false.
func (s *redisFeedSub) install(ps *redis.PubSub) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = ps.Close()
		return false
	}
	s.ps = ps
	return true
}

// drop closes ps and forgets it if it is the current PubSub.
func (s *redisFeedSub) drop(ps *redis.PubSub) {
	s.mu.Lock()
	if s.ps == ps {
		s.ps = nil
	}
	s.mu.Unlock()
	_ = ps.Close()
}

// run reads the subscription's messages and delivers them, replacing the PubSub when it
// fails, until the subscription is cancelled or the store closed.
func (s *redisFeedSub) run() {
	defer close(s.exited)
	s.mu.Lock()
	ps := s.ps
	s.mu.Unlock()
	pinged := false // a PING was sent and nothing has been received since
	for ps != nil {
		v, err := ps.ReceiveTimeout(s.ctx, feedCheckInterval)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				if ps.Ping(s.ctx) == nil {
					pinged = true
					continue
				}
			}
			// The connection failed or did not answer the PING. (go-redis may have
			// connected and subscribed again already; a fresh start is simpler to reason
			// about.)
			ps = s.renew(ps)
			pinged = false
			continue
		}
		pinged = false
		switch v := v.(type) {
		case *redis.Message:
			if m, epoch, err := decodeFeedFrame(v.Payload); err == nil {
				s.handle(m, epoch)
			}
		case *redis.Subscription:
			if v.Channel != s.channel {
				break
			}
			switch v.Kind {
			case "ssubscribe":
				// go-redis connected and subscribed again by itself: messages may have been
				// published in between.
				ctx, cancel := context.WithTimeout(s.ctx, feedSubscribeTimeout)
				err := s.catchUp(ctx)
				cancel()
				if err != nil {
					ps = s.renew(ps)
				}
			case "sunsubscribe":
				// Redis ended the subscription: the slot moved to another node, or this
				// node became a replica.
				ps = s.renew(ps)
			}
		}
	}
}

// renew closes old and subscribes again, with a catch-up, until it succeeds. It returns the new
// PubSub, or nil when the subscription was cancelled or the store closed.
func (s *redisFeedSub) renew(old *redis.PubSub) *redis.PubSub {
	s.drop(old)
	pause := feedRetryMin
	for {
		ps, err := s.resubscribe()
		if err == nil {
			return ps
		}
		if errors.Is(err, redis.ErrClosed) || s.ctx.Err() != nil {
			return nil
		}
		t := time.NewTimer(pause)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		pause = min(2*pause, feedRetryMax)
	}
}

// resubscribe makes one attempt to subscribe again and catch up. It returns a nil PubSub and
// no error when the subscription was cancelled meanwhile.
func (s *redisFeedSub) resubscribe() (*redis.PubSub, error) {
	const op = "subscribe room again"
	ctx, cancel := context.WithTimeout(s.ctx, feedSubscribeTimeout)
	defer cancel()
	ps, err := s.r.feedSubscribe(ctx, op, s.channel)
	if err != nil {
		return nil, err
	}
	if !s.install(ps) {
		return nil, nil
	}
	if err := s.catchUp(ctx); err != nil {
		s.drop(ps)
		return nil, err
	}
	return ps, nil
}

// catchUp delivers the stored messages after the last one delivered. Call it once the
// subscription is confirmed, so that what it misses comes through the subscription.
func (s *redisFeedSub) catchUp(ctx context.Context) error {
	const op = "feed catch-up"
	after := s.last
	for {
		v, err := s.r.run(ctx, op, feedCatchUpScript, s.r.historyKeys(s.room),
			strconv.FormatUint(after, 10), feedCatchUpBatch)
		if err != nil {
			return err
		}
		if len(v) == 0 {
			return nil // no such room (any more): nothing to deliver
		}
		epoch := strAt(v, 0)
		if epoch != s.epoch {
			// The room was created again after the subscription started: all of its
			// history is new to the subscriber.
			s.epoch, s.last = epoch, 0
			if after != 0 {
				after = 0
				continue
			}
		}
		msgs, err := decodeMessages(op, s.room, v[1:])
		if err != nil {
			return nil // skipped, like an undecodable frame
		}
		for _, m := range msgs {
			s.handle(m, epoch)
		}
		if len(msgs) < feedCatchUpBatch || s.ctx.Err() != nil {
			return nil
		}
		after = s.last
	}
}

// handle delivers m unless it was delivered already or the subscription was cancelled.
func (s *redisFeedSub) handle(m Message, epoch string) {
	if epoch == s.epoch && m.ID <= s.last {
		return
	}
	s.epoch, s.last = epoch, m.ID
	if s.ctx.Err() != nil {
		return
	}
	s.deliver(m, epoch)
}

var errBadFeedFrame = errors.New("malformed feed frame")

// decodeFeedFrame decodes a message published by appendScript. The message's payload is a new
// allocation.
func decodeFeedFrame(s string) (Message, string, error) {
	idText, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Message{}, "", errBadFeedFrame
	}
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil || id == 0 {
		return Message{}, "", errBadFeedFrame
	}
	nText, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return Message{}, "", errBadFeedFrame
	}
	n, err := strconv.Atoi(nText)
	if err != nil || n < 0 || n > len(rest) {
		return Message{}, "", errBadFeedFrame
	}
	m, _, err := decodeMessage(rest[n:], nil)
	if err != nil {
		return Message{}, "", err
	}
	m.ID = id
	return m, rest[:n], nil
}
