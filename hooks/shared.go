package hooks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/metrics"
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
	// Kind is empty for a message, or one of the control kinds below.
	Kind    string `json:"k,omitempty"`
	Topic   string `json:"t,omitempty"`
	Payload []byte `json:"p,omitempty"`
	Retain  bool   `json:"r,omitempty"`
	Except  string `json:"x,omitempty"`
	Client  string `json:"c,omitempty"`
	Session string `json:"s,omitempty"`
	Room    string `json:"m,omitempty"`
	User    string `json:"u,omitempty"`
	// At is when the connection of a takeover connected, in milliseconds: only older
	// connections are taken over (a client that flaps back is not kicked by a late message).
	At int64 `json:"a,omitempty"`
	// Version is the version of a presence message (wire.Presence.Version).
	Version uint64 `json:"v,omitempty"`
	// QoS and Props are those of a client's message (kindPublish).
	QoS   byte   `json:"q,omitempty"`
	Props *props `json:"o,omitempty"`

	// to is the instance to send to, "" for all of them.
	to string
}

// Control kinds: what another instance must do to its own connections.
const (
	// kindTakeover: Client connected anew (Session); an older connection of it ends (0x8E).
	kindTakeover = "takeover"
	// kindDisconnect: Client is to be disconnected (0x98).
	kindDisconnect = "disconnect"
	// kindRemoved: User lost access to Room; their subscribers there end.
	kindRemoved = "removed"
)

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
		r.opts.Metrics.Dropped(metrics.DropBroadcastQueueFull)
		r.log.Warn("message for the other instances dropped: queue full", logKeyTopic, e.Topic)
	}
}

// StartSharing subscribes to the other instances' messages and to this instance's mailbox,
// reads the routes, and starts the sender; the router owns them all, and OnStopped ends them.
// Call it once, before the server serves.
func (r *Router) StartSharing(ctx context.Context) error {
	if r.opts.Broadcast == nil {
		return nil
	}
	stop, err := r.opts.Broadcast.SubscribeBroadcast(ctx, r.fromBroadcast)
	if err != nil {
		return fmt.Errorf("listen to the other instances: %w", err)
	}
	r.mu.Lock()
	r.stopListening = stop
	r.mu.Unlock()
	if r.opts.Routes != nil {
		stop, err := r.opts.Routes.SubscribeMailbox(ctx, r.opts.Instance, r.fromBroadcast)
		if err != nil {
			return fmt.Errorf("listen to this instance's mailbox: %w", err)
		}
		r.mu.Lock()
		r.stopMailbox = stop
		r.mu.Unlock()
		r.refreshRoutes(ctx)
		r.spawn(func() { r.keepRoutes(r.stopRouting) })
	}
	r.spawn(func() {
		for e := range r.outgoing {
			b, err := json.Marshal(e)
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), broadcastTimeout)
			if e.to != "" {
				err = r.opts.Routes.SendTo(ctx, e.to, b)
			} else {
				err = r.opts.Broadcast.Broadcast(ctx, b)
			}
			if err != nil {
				r.log.Warn("send to the other instances", logKeyTopic, e.Topic, "instance", e.to, logKeyError, err)
			}
			cancel()
		}
	})
	return nil
}

// stopSharing ends the subscription and the sender (after it sent what is queued). r.closed
// must be set already, so that nothing is queued any more.
func (r *Router) stopSharing() {
	if r.opts.Broadcast == nil {
		return
	}
	r.mu.Lock()
	stops := []func(){r.stopListening, r.stopMailbox}
	r.stopListening, r.stopMailbox = nil, nil
	r.mu.Unlock()
	for _, stop := range stops {
		if stop != nil {
			stop()
		}
	}
	close(r.stopRouting)
	close(r.outgoing)
}

// fromBroadcast delivers a message of another instance to this instance's subscribers.
func (r *Router) fromBroadcast(b []byte) {
	var e envelope
	if json.Unmarshal(b, &e) != nil || e.Instance == r.opts.Instance {
		return // undecodable, or ours: delivered here already
	}
	switch e.Kind {
	case kindTakeover:
		if c, ok := r.connByID(e.Client); ok && c.session.ID != e.Session && c.session.ConnectedAt.UnixMilli() <= e.At {
			r.kick(c.cl, packets.ErrSessionTakenOver) // [MQTT-3.1.4-3], cluster-wide
		}
		return
	case kindDisconnect:
		if c, ok := r.connByID(e.Client); ok {
			r.kick(c.cl, packets.ErrAdministrativeAction)
		}
		return
	case kindRemoved:
		r.rooms.DropUser(e.Room, e.User)
		return
	case kindRoute:
		r.remoteRoute(e.Instance, e.Topic)
		return
	case kindPublish:
		r.deliverForwarded(e)
		return
	case "":
	default:
		return // a kind of a newer version
	}
	switch t := wire.ParseTopic(e.Topic); t.Kind {
	case wire.TopicRoomEvents:
		var ev wire.Event
		if json.Unmarshal(e.Payload, &ev) == nil {
			r.roomEvent(t.Name, ev)
		}
		return
	case wire.TopicPresence:
		r.retainPresence(t.Name, e.Version, e.Payload, false)
		return
	}
	r.publish(message{topic: e.Topic, payload: e.Payload, qos: 1, retain: e.Retain}, e.Except)
}

// UserRemoved implements rooms.Notifier: the other instances drop the user's subscribers.
func (r *Router) UserRemoved(room, user string) {
	r.broadcast(envelope{Kind: kindRemoved, Room: room, User: user})
}
