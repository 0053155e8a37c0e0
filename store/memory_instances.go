package store

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// memoryInstances is the Instances part of Memory, for brokers that share one Memory in a
// process (tests of several instances). Its clock is the process's.
type memoryInstances struct {
	mu sync.Mutex
	// alive maps an instance to the end of its last heartbeat's ttl.
	alive map[string]time.Time
	// claimed maps a dead instance to the end of its claim's lease.
	claimed map[string]time.Time
	now     func() time.Time
}

func (mi *memoryInstances) init() {
	mi.alive = make(map[string]time.Time)
	mi.claimed = make(map[string]time.Time)
	mi.now = time.Now
}

// Heartbeat records that instance is alive for ttl from now, and reports whether its record
// continued.
func (m *Memory) Heartbeat(_ context.Context, instance string, ttl time.Duration) (bool, error) {
	mi := &m.instances
	mi.mu.Lock()
	defer mi.mu.Unlock()
	_, ok := mi.alive[instance]
	_, claimed := mi.claimed[instance]
	mi.alive[instance] = mi.now().Add(ttl)
	return ok && !claimed, nil
}

// ClaimDeadInstance returns an instance whose heartbeat expired and that is not claimed, and
// claims it for lease; "" when there is none.
func (m *Memory) ClaimDeadInstance(_ context.Context, lease time.Duration) (string, error) {
	mi := &m.instances
	mi.mu.Lock()
	defer mi.mu.Unlock()
	now := mi.now()
	for instance, until := range mi.alive {
		if !until.Before(now) {
			continue
		}
		if c, ok := mi.claimed[instance]; ok && !c.Before(now) {
			continue
		}
		mi.claimed[instance] = now.Add(lease)
		return instance, nil
	}
	return "", nil
}

// ReleaseDeadInstance forgets a claimed instance, unless a heartbeat keeps it alive.
func (m *Memory) ReleaseDeadInstance(_ context.Context, instance string) error {
	mi := &m.instances
	mi.mu.Lock()
	defer mi.mu.Unlock()
	delete(mi.claimed, instance)
	if until, ok := mi.alive[instance]; ok && until.Before(mi.now()) {
		delete(mi.alive, instance)
		m.routes.drop(instance)
	}
	return nil
}

// RemoveInstance forgets an instance that stopped gracefully.
func (m *Memory) RemoveInstance(_ context.Context, instance string) error {
	mi := &m.instances
	mi.mu.Lock()
	defer mi.mu.Unlock()
	delete(mi.alive, instance)
	delete(mi.claimed, instance)
	m.routes.drop(instance)
	return nil
}

// memoryPresence is the Presences part of Memory.
type memoryPresence struct {
	mu     sync.Mutex
	byUser map[string]Presence
}

func (mp *memoryPresence) init() { mp.byUser = make(map[string]Presence) }

// SetPresence stores p unless a presence of p.User with a higher Version is stored.
func (m *Memory) SetPresence(_ context.Context, p Presence) error {
	mp := &m.presence
	mp.mu.Lock()
	defer mp.mu.Unlock()
	if cur, ok := mp.byUser[p.User]; ok && cur.Version > p.Version {
		return nil
	}
	p.Payload = bytes.Clone(p.Payload)
	mp.byUser[p.User] = p
	return nil
}

// Presences returns the stored presence of every user.
func (m *Memory) Presences(_ context.Context) ([]Presence, error) {
	mp := &m.presence
	mp.mu.Lock()
	defer mp.mu.Unlock()
	out := make([]Presence, 0, len(mp.byUser))
	for _, p := range mp.byUser {
		p.Payload = bytes.Clone(p.Payload)
		out = append(out, p)
	}
	return out, nil
}

// memoryRetained is the Retained part of Memory.
type memoryRetained struct {
	mu      sync.Mutex
	version uint64
	byTopic map[string]RetainedMessage
}

// SetRetained stores or removes the retained message of topic.
func (m *Memory) SetRetained(_ context.Context, topic string, message []byte) (uint64, error) {
	mr := &m.retained
	mr.mu.Lock()
	defer mr.mu.Unlock()
	if mr.byTopic == nil {
		mr.byTopic = make(map[string]RetainedMessage)
	}
	mr.version++
	if message == nil {
		delete(mr.byTopic, topic)
	} else {
		mr.byTopic[topic] = RetainedMessage{Topic: topic, Version: mr.version, Message: bytes.Clone(message)}
	}
	return mr.version, nil
}

// RetainedMessages returns every retained message.
func (m *Memory) RetainedMessages(_ context.Context) ([]RetainedMessage, error) {
	mr := &m.retained
	mr.mu.Lock()
	defer mr.mu.Unlock()
	out := make([]RetainedMessage, 0, len(mr.byTopic))
	for _, rm := range mr.byTopic {
		rm.Message = bytes.Clone(rm.Message)
		out = append(out, rm)
	}
	return out, nil
}
