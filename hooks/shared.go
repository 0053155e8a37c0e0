package hooks

import (
	"context"
	"encoding/json"
	"time"

	"github.com/roomq/roomq/wire"
)

// broadcastQueue bounds the messages waiting to be sent to the other instances.
const broadcastQueue = 10000

// broadcastTimeout bounds sending one message to the other instances.
const broadcastTimeout = 5 * time.Second

// envelope is a message of the broker's own (an event, a presence, a direct message) sent to
// the other instances, which deliver it to their subscribers as if it were published there.
type envelope struct {
	Instance string `json:"i"`
	Topic    string `json:"t"`
	Payload  []byte `json:"p"`
	Retain   bool   `json:"r,omitempty"`
	Except   string `json:"x,omitempty"`
}

// share publishes m here and on the other instances.
func (r *Router) share(m message, except string) {
	r.publish(m, except)
	r.broadcast(envelope{Topic: m.topic, Payload: m.payload, Retain: m.retain, Except: except})
}

// broadcast queues e for the other instances; it never blocks. With the queue full (the store
// is unreachable for long) e is dropped and logged.
func (r *Router) broadcast(e envelope) {
	if r.opts.Broadcast == nil {
		return
	}
	e.Instance = r.opts.Instance
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return // stopping: the sender is gone
	}
	select {
	case r.outgoing <- e:
	default:
		r.log.Warn("message for the other instances dropped: queue full", logKeyTopic, e.Topic)
	}
}

// startSharing subscribes to the other instances' messages and starts the sender. The router
// owns both; stopSharing ends them.
func (r *Router) startSharing() {
	if r.opts.Broadcast == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), broadcastTimeout)
	defer cancel()
	stop, err := r.opts.Broadcast.SubscribeBroadcast(ctx, r.fromBroadcast)
	if err != nil {
		r.log.Error("listen to the other instances", logKeyError, err)
	} else {
		r.mu.Lock()
		r.stopListening = stop
		r.mu.Unlock()
	}
	r.spawn(func() {
		for e := range r.outgoing {
			b, err := json.Marshal(e)
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), broadcastTimeout)
			if err := r.opts.Broadcast.Broadcast(ctx, b); err != nil {
				r.log.Warn("send to the other instances", logKeyTopic, e.Topic, logKeyError, err)
			}
			cancel()
		}
	})
}

// stopSharing ends the subscription and the sender (after it sent what is queued). r.closed
// must be set already, so that nothing is queued any more.
func (r *Router) stopSharing() {
	if r.opts.Broadcast == nil {
		return
	}
	r.mu.Lock()
	stop := r.stopListening
	r.stopListening = nil
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
	close(r.outgoing)
}

// fromBroadcast delivers a message of another instance to this instance's subscribers.
func (r *Router) fromBroadcast(b []byte) {
	var e envelope
	if json.Unmarshal(b, &e) != nil || e.Instance == r.opts.Instance {
		return // undecodable, or ours: delivered here already
	}
	if t := wire.ParseTopic(e.Topic); t.Kind == wire.TopicRoomEvents {
		var ev wire.Event
		if json.Unmarshal(e.Payload, &ev) == nil {
			r.roomEvent(t.Name, ev)
		}
		return
	}
	r.publish(message{topic: e.Topic, payload: e.Payload, qos: 1, retain: e.Retain}, e.Except)
}
