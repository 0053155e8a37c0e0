package store

import (
	"context"
	"slices"
	"sync"
)

// memoryRoutes is the Routes part of Memory.
type memoryRoutes struct {
	mu         sync.Mutex
	byInstance map[string]map[string]struct{}
}

func (mr *memoryRoutes) init() { mr.byInstance = make(map[string]map[string]struct{}) }

func (mr *memoryRoutes) drop(instance string) {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	delete(mr.byInstance, instance)
}

// AddRoute records that instance has subscribers for filter.
func (m *Memory) AddRoute(_ context.Context, instance, filter string) error {
	mr := &m.routes
	mr.mu.Lock()
	defer mr.mu.Unlock()
	addToSet(mr.byInstance, instance, filter)
	return nil
}

// SetRoutes replaces the filters of instance.
func (m *Memory) SetRoutes(_ context.Context, instance string, filters []string) error {
	mr := &m.routes
	mr.mu.Lock()
	defer mr.mu.Unlock()
	delete(mr.byInstance, instance)
	for _, f := range filters {
		addToSet(mr.byInstance, instance, f)
	}
	return nil
}

// Routes returns the filters of every instance with a heartbeat, sorted.
func (m *Memory) Routes(_ context.Context) (map[string][]string, error) {
	m.instances.mu.Lock()
	instances := make([]string, 0, len(m.instances.alive))
	for inst := range m.instances.alive {
		instances = append(instances, inst)
	}
	m.instances.mu.Unlock()
	mr := &m.routes
	mr.mu.Lock()
	defer mr.mu.Unlock()
	out := make(map[string][]string, len(instances))
	for _, inst := range instances {
		filters := make([]string, 0, len(mr.byInstance[inst]))
		for f := range mr.byInstance[inst] {
			filters = append(filters, f)
		}
		slices.Sort(filters)
		out[inst] = filters
	}
	return out, nil
}

// mailboxRoom is the feed key of instance's mailbox: not a valid room name.
func mailboxRoom(instance string) string { return "\x00mailbox:" + instance }

// SendTo sends payload to the subscribers of instance's mailbox.
func (m *Memory) SendTo(_ context.Context, instance string, payload []byte) error {
	m.feed.publish(mailboxRoom(instance), Message{Payload: payload}, "")
	return nil
}

// SubscribeMailbox calls deliver with every payload sent to instance.
func (m *Memory) SubscribeMailbox(ctx context.Context, instance string, deliver func([]byte)) (func(), error) {
	return m.SubscribeRoom(ctx, mailboxRoom(instance), func(msg Message, _ string) { deliver(msg.Payload) })
}
