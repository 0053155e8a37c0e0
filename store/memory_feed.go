package store

import (
	"context"
	"sync"
)

// memoryFeed is the Feed of a Memory store: every Append is handed to the subscribers of its
// room, each through its own queue and goroutine, so that Append never waits for them.
type memoryFeed struct {
	mu   sync.Mutex
	subs map[string]map[*feedSub]struct{} // by room
}

// feedSub is one SubscribeRoom: a queue drained by one goroutine.
type feedSub struct {
	deliver func(Message, string)

	mu     sync.Mutex
	queue  []feedItem
	wake   chan struct{}
	done   chan struct{}
	closed bool
	wg     sync.WaitGroup
}

type feedItem struct {
	m     Message
	epoch string
}

// SubscribeRoom implements Feed.
func (m *Memory) SubscribeRoom(_ context.Context, room string, deliver func(Message, string)) (func(), error) {
	s := &feedSub{deliver: deliver, wake: make(chan struct{}, 1), done: make(chan struct{})}
	f := &m.feed
	f.mu.Lock()
	if f.subs == nil {
		f.subs = make(map[string]map[*feedSub]struct{})
	}
	if f.subs[room] == nil {
		f.subs[room] = make(map[*feedSub]struct{})
	}
	f.subs[room][s] = struct{}{}
	f.mu.Unlock()

	s.wg.Add(1)
	go s.run()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs[room], s)
			if len(f.subs[room]) == 0 {
				delete(f.subs, room)
			}
			f.mu.Unlock()
			s.mu.Lock()
			s.closed = true
			close(s.done)
			s.mu.Unlock()
			s.wg.Wait()
		})
	}, nil
}

// publish hands m to the subscribers of room.
func (f *memoryFeed) publish(room string, m Message, epoch string) {
	f.mu.Lock()
	subs := make([]*feedSub, 0, len(f.subs[room]))
	for s := range f.subs[room] {
		subs = append(subs, s)
	}
	f.mu.Unlock()
	for _, s := range subs {
		cp := m
		cp.Payload = clonePayload(m.Payload)
		s.push(feedItem{cp, epoch})
	}
}

func (s *feedSub) push(it feedItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.queue = append(s.queue, it)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run delivers queued messages until the subscription is cancelled.
func (s *feedSub) run() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			if s.closed || len(s.queue) == 0 {
				s.mu.Unlock()
				break
			}
			it := s.queue[0]
			s.queue = s.queue[1:]
			s.mu.Unlock()
			s.deliver(it.m, it.epoch)
		}
	}
}

// broadcastRoom is the feed key of broadcasts: not a valid room name, so no room's feed.
const broadcastRoom = "\x00broadcast"

// Broadcast implements Broadcaster: every SubscribeBroadcast of this store gets payload.
func (m *Memory) Broadcast(_ context.Context, payload []byte) error {
	m.feed.publish(broadcastRoom, Message{Payload: payload}, "")
	return nil
}

// SubscribeBroadcast implements Broadcaster.
func (m *Memory) SubscribeBroadcast(ctx context.Context, deliver func([]byte)) (func(), error) {
	return m.SubscribeRoom(ctx, broadcastRoom, func(msg Message, _ string) { deliver(msg.Payload) })
}
