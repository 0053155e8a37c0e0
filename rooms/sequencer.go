package rooms

import (
	"context"
	"fmt"
	"time"

	"github.com/roomq/roomq/store"
)

// Delivery in id order across instances.
//
// Every instance that has subscribers of a room listens to the room's store.Feed and keeps in
// roomState.last the id of the last message it delivered to them. Messages reach it from its
// own Post and from the feed (its own appends too, and those of every other instance), late,
// twice or out of order; under the room's lock each is delivered only if it is the next one,
// after filling any gap from the history, and dropped if it was delivered already. So every
// subscriber gets the room's messages once each, in id order, whichever instance accepted
// them.

// feedTimeout bounds the store calls made while sequencing a message from the feed.
const feedTimeout = 10 * time.Second

// trackLocked starts listening to the room's feed if this instance does not yet, and returns
// the history info read after the feed subscription was in place: every message appended
// later arrives through the feed. Lock st.mu must be held.
func (s *Service) trackLocked(ctx context.Context, room string, st *roomState) (store.HistoryInfo, error) {
	if st.cancelFeed == nil {
		cancel, err := s.store.SubscribeRoom(ctx, room, func(m store.Message, epoch string) {
			s.fromFeed(room, st, m, epoch)
		})
		if err != nil {
			return store.HistoryInfo{}, fmt.Errorf("follow room %q: %w", room, err)
		}
		st.cancelFeed = cancel
		info, err := s.store.HistoryInfo(ctx, room)
		if err != nil {
			st.cancelFeed = nil
			go cancel() // cancel waits for a running delivery, which may wait for st.mu
			return store.HistoryInfo{}, fmt.Errorf("follow room %q: %w", room, err)
		}
		st.last, st.epoch = info.LastID, info.Epoch
		return info, nil
	}
	info, err := s.store.HistoryInfo(ctx, room)
	if err != nil {
		return store.HistoryInfo{}, fmt.Errorf("follow room %q: %w", room, err)
	}
	return info, nil
}

// untrackLocked stops following the room when it has no subscriber left here, and returns
// the function that ends the feed subscription: call it after unlocking st.mu, since it waits
// for a running delivery, which may wait for the lock. Lock st.mu must be held.
func untrackLocked(st *roomState) func() {
	if len(st.subs) > 0 || st.cancelFeed == nil {
		return func() {}
	}
	cancel := st.cancelFeed
	st.cancelFeed = nil
	return cancel
}

// fromFeed sequences a message that arrived through the feed.
func (s *Service) fromFeed(room string, st *roomState, m store.Message, epoch string) {
	ctx, cancel := context.WithTimeout(context.Background(), feedTimeout)
	defer cancel()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cancelFeed == nil {
		return // no longer followed here
	}
	if epoch != st.epoch {
		// The history was lost and started again (the room was deleted and created again, or
		// the store lost its data): continue from the new history.
		st.epoch, st.last = epoch, 0
	}
	s.deliverLocked(ctx, room, st, m, "")
}

// deliverLocked delivers m to the room's subscribers on this instance if it is new, first
// delivering from the history the messages between the last one delivered and m. Lock st.mu
// must be held.
func (s *Service) deliverLocked(ctx context.Context, room string, st *roomState, m store.Message, origin string) {
	if st.cancelFeed == nil || m.ID <= st.last {
		return // nobody here, or delivered already
	}
	if m.ID > st.last+1 {
		s.catchUpLocked(ctx, room, st, m.ID-1)
	}
	msg := NewMessage(room, st.epoch, origin, m)
	for _, sub := range st.subs {
		sub.DeliverRoom(msg)
	}
	st.last = m.ID
}

// catchUpLocked delivers the stored messages after st.last up to id to the room's subscribers.
// Messages that already left the history cannot be delivered: they are skipped. Lock st.mu
// must be held.
func (s *Service) catchUpLocked(ctx context.Context, room string, st *roomState, id uint64) {
	for st.last < id {
		msgs, err := s.store.Range(ctx, room, st.last, int(min(id-st.last, replayBatch)))
		if err != nil {
			s.log.Error("fill a gap from the history", "room", room, "after", st.last, "error", err)
			return
		}
		if len(msgs) == 0 {
			return
		}
		for _, m := range msgs {
			if m.ID > id {
				return
			}
			if m.ID > st.last+1 {
				s.log.Warn("messages left the history before this instance delivered them", "room", room, "from", st.last+1, "to", m.ID-1)
			}
			msg := NewMessage(room, st.epoch, "", m)
			for _, sub := range st.subs {
				sub.DeliverRoom(msg)
			}
			st.last = m.ID
		}
	}
}

// Close stops following every room's feed.
func (s *Service) Close() {
	s.mu.Lock()
	states := make([]*roomState, 0, len(s.rooms))
	for _, st := range s.rooms {
		states = append(states, st)
	}
	s.mu.Unlock()
	for _, st := range states {
		st.mu.Lock()
		cancel := st.cancelFeed
		st.cancelFeed = nil
		st.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	}
}
