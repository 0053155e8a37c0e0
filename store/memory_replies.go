package store

import (
	"context"
	"sync"
	"time"
)

// memoryReplies is the Replies part of Memory.
type memoryReplies struct {
	mu sync.Mutex
	// byClient holds, per client id and topic, the expiry times of the rights, oldest first.
	byClient map[string]map[string][]time.Time
}

// GrantReply lets clientID publish once to topic within ttl.
func (m *Memory) GrantReply(_ context.Context, clientID, topic string, ttl time.Duration) error {
	mr := &m.replies
	mr.mu.Lock()
	defer mr.mu.Unlock()
	if mr.byClient == nil {
		mr.byClient = make(map[string]map[string][]time.Time)
	}
	topics := mr.byClient[clientID]
	if topics == nil {
		topics = make(map[string][]time.Time)
		mr.byClient[clientID] = topics
	}
	now := m.instances.now()
	topics[topic] = append(unexpired(topics[topic], now), now.Add(ttl))
	return nil
}

// UseReply spends one of clientID's unexpired rights to publish to topic.
func (m *Memory) UseReply(_ context.Context, clientID, topic string) (bool, error) {
	mr := &m.replies
	mr.mu.Lock()
	defer mr.mu.Unlock()
	topics := mr.byClient[clientID]
	rights := unexpired(topics[topic], m.instances.now())
	ok := len(rights) > 0
	if ok {
		rights = rights[1:]
	}
	if len(rights) == 0 {
		delete(topics, topic)
		if len(topics) == 0 {
			delete(mr.byClient, clientID)
		}
	} else {
		topics[topic] = rights
	}
	return ok, nil
}

// unexpired returns the expiry times of rights after now, oldest first; expiries grow along
// the slice, since every right gets the same ttl.
func unexpired(rights []time.Time, now time.Time) []time.Time {
	for len(rights) > 0 && rights[0].Before(now) {
		rights = rights[1:]
	}
	return rights
}
