package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/devices"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// message is a packet the broker publishes on its own.
type message struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
	props   packets.Properties
}

// publish delivers m to every subscriber of its topic on this instance, except the connection
// with client id except, through their outboxes. A retained m is also kept for later
// subscribers.
func (r *Router) publish(m message, except string) { r.publishTo(m, except, nil) }

// publishTo is publish for the subscribers that allow accepts (all when allow is nil).
//
// When allow is nil, Mochi's inline subscriptions whose filter matches (added with
// Server.Topics.InlineSubscribe, as package gateway does) get m too, so that Go code in the
// process sees the broker's own messages — direct messages, presence, events — as MQTT
// subscribers do, from this instance and the others. Their handlers run synchronously, with
// the router's locks held (presence, a room's), and must not block.
func (r *Router) publishTo(m message, except string, allow func(*conn) bool) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.qos, Retain: m.retain},
		TopicName:   m.topic,
		Payload:     m.payload,
		Properties:  m.props,
		Origin:      brokerInlineClientID,
		Created:     time.Now().Unix(),
	}
	if m.retain {
		r.retain(pk.Copy(false))
	}
	subs := r.srv.Topics.Subscribers(m.topic)
	if len(subs.Shared) > 0 {
		subs.SelectShared()
		subs.MergeSharedSelected()
	}
	for id, sub := range subs.Subscriptions {
		if id == except {
			continue
		}
		c, ok := r.connByID(id)
		if !ok || (allow != nil && !allow(c)) {
			continue
		}
		c.out.push(packetFor(c, sub, pk))
	}
	if allow == nil {
		for _, in := range subs.InlineSubscriptions {
			in.Handler(r.inline, in.Subscription, pk.Copy(false))
		}
	}
}

// retain makes pk the retained message of its topic in Mochi's index. Mochi v2.7.9 writes
// the topic's place in the index (particle.retainPath) on every RetainMessage, and a
// SUBSCRIBE with a wildcard reads it without a lock (TopicsIndex.scanMessages): a data race
// between a presence change and a subscription to presence/+. So a topic that has a retained
// message already gets the new one in the retained store alone (which has its own lock), and
// only a topic's first retained message, or its removal, goes through RetainMessage.
func (r *Router) retain(pk packets.Packet) {
	if len(pk.Payload) > 0 {
		if _, ok := r.srv.Topics.Retained.Get(pk.TopicName); ok {
			r.srv.Topics.Retained.Add(pk.TopicName, pk)
			return
		}
	}
	r.srv.Topics.RetainMessage(pk)
}

// packetFor adapts pk to one subscription: QoS, retain flag and subscription identifiers, as
// Mochi's publishToClient does. The copy shares pk's payload (an RPC answer can be many
// kilobytes): nothing changes a queued payload in place (OnPacketEncode replaces it).
func packetFor(c *conn, sub packets.Subscription, pk packets.Packet) packets.Packet {
	payload := pk.Payload
	pk.Payload = nil
	out := pk.Copy(false)
	out.Payload = payload
	if out.FixedHeader.Qos > sub.Qos {
		out.FixedHeader.Qos = sub.Qos // [MQTT-3.8.4-8]
	}
	if c.cl.Properties.ProtocolVersion < 5 || !sub.RetainAsPublished {
		out.FixedHeader.Retain = false // [MQTT-3.3.1-12]
	}
	if len(sub.Identifiers) > 0 { // [MQTT-3.3.4-3]
		ids := make([]int, 0, len(sub.Identifiers))
		for _, id := range sub.Identifiers {
			ids = append(ids, id)
		}
		sort.Ints(ids)
		out.Properties.SubscriptionIdentifier = ids
	} else if sub.Identifier > 0 {
		out.Properties.SubscriptionIdentifier = []int{sub.Identifier}
	}
	return out
}

func eventMessage(topic string, ev wire.Event) message {
	payload, _ := json.Marshal(ev)
	return message{topic: topic, payload: payload, qos: 1}
}

// RoomEvent implements rooms.Notifier.
// Only users who may still join the room get its events: a user who lost access loses the
// events subscription at the next event.
func (r *Router) RoomEvent(room string, ev wire.Event) {
	r.roomEvent(room, ev)
	payload, _ := json.Marshal(ev)
	r.broadcast(envelope{Topic: wire.RoomEventsTopic(room), Payload: payload})
}

// roomEvent publishes ev on rooms/{room}/events on this instance.
func (r *Router) roomEvent(room string, ev wire.Event) {
	topic := wire.RoomEventsTopic(room)
	ctx, cancel := r.ctx()
	defer cancel()
	allowed := make(map[string]bool) // by user: one check per user, not per connection
	r.publishTo(eventMessage(topic, ev), "", func(c *conn) bool {
		id := c.session.Identity
		ok, seen := allowed[id.User]
		if !seen {
			access, err := acl.LoadRoomAccess(ctx, r.access, room, id.User)
			ok = err == nil && r.policy.CanJoin(access, id)
			if err != nil && !errors.Is(err, store.ErrNoRoom) {
				r.log.Error("room events access", logKeyRoom, room, logKeyUser, id.User, logKeyError, err)
				ok = true // a store hiccup must not unsubscribe anyone
			}
			allowed[id.User] = ok
		}
		if !ok && ev["event"] != wire.EventRoomDeleted {
			r.dropSubscription(c.cl, topic)
		}
		return ok || ev["event"] == wire.EventRoomDeleted
	})
}

// UserEvent implements rooms.Notifier and devices.Notifier.
func (r *Router) UserEvent(user string, ev wire.Event) {
	r.share(eventMessage(wire.UserEventsTopic(user), ev), "")
}

// UserEventExcept implements commands.Transport.
func (r *Router) UserEventExcept(user, except string, ev wire.Event) {
	r.share(eventMessage(wire.UserEventsTopic(user), ev), except)
}

// Presence implements devices.Notifier: presence/{user} is retained, on every instance. The
// instances report the counts of a user out of order; each keeps the one with the highest
// version.
func (r *Router) Presence(p wire.Presence) {
	payload, _ := json.Marshal(p)
	r.retainPresence(p.User, p.Version, payload, true)
}

// RetainPresences retains the presences that the store kept, for an instance that starts:
// presence/+ is then complete here too. Newer presences that arrived meanwhile stay.
func (r *Router) RetainPresences(ps []wire.Presence) {
	for _, p := range ps {
		payload, _ := json.Marshal(p)
		r.retainPresence(p.User, p.Version, payload, false)
	}
}

// retainPresence publishes payload, the presence of user with the given version, here (and
// to the other instances when share is set) unless a newer one was published here.
func (r *Router) retainPresence(user string, version uint64, payload []byte, share bool) {
	r.presenceMu.Lock() // held while publishing, so that an older count never overtakes
	defer r.presenceMu.Unlock()
	if cur, ok := r.presence[user]; ok && cur >= version {
		return
	}
	r.presence[user] = version
	m := message{topic: wire.PresenceTopic(user), payload: payload, qos: 1, retain: true}
	r.publish(m, "")
	if share {
		r.broadcast(envelope{Topic: m.topic, Payload: payload, Retain: true, Version: version})
	}
}

// DisconnectAll ends every connection of this instance (v5 clients get DISCONNECT 0x89,
// server busy): they connect again and are recorded anew.
func (r *Router) DisconnectAll() {
	r.mu.Lock()
	conns := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		r.kick(c.cl, packets.ErrServerBusy)
	}
}

// DeliverDirect implements commands.Transport.
func (r *Router) DeliverDirect(to string, payload []byte) {
	r.share(message{topic: wire.UserInboxTopic(to), payload: payload, qos: 1}, "")
}

// PublishWill implements devices.WillPublisher. A will on a room topic is posted as a room
// message of its user; any other will is published as it was given.
func (r *Router) PublishWill(ctx context.Context, w devices.Will) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.CommandTimeout)
	defer cancel()
	if t := wire.ParseTopic(w.Topic); t.Kind == wire.TopicRoom {
		caller := commands.Caller{Identity: acl.Identity{User: w.User}, ClientID: w.ClientID}
		if _, err := r.commands.PostRoom(ctx, caller, t.Name, w.Payload); err != nil {
			r.log.Info("will refused", logKeyClient, w.ClientID, logKeyRoom, t.Name, logKeyError, err)
		}
		return
	}
	props := packets.Properties{}
	for _, p := range w.Properties {
		props.User = append(props.User, packets.UserProperty{Key: p[0], Val: p[1]})
	}
	if t := wire.ParseTopic(w.Topic); t.Kind == wire.TopicUserInbox {
		// A will to an inbox is a direct message: checked and enriched like one.
		caller := commands.Caller{Identity: acl.Identity{User: w.User}, ClientID: w.ClientID}
		if _, err := r.commands.SendDirect(ctx, caller, t.Name, w.Payload); err != nil {
			r.log.Info("will refused", logKeyClient, w.ClientID, logKeyTopic, w.Topic, logKeyError, err)
		}
		return
	}
	// A plain topic: Mochi delivers it like any publish.
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: w.QoS, Retain: w.Retain},
		TopicName:   w.Topic,
		Payload:     w.Payload,
		Properties:  props,
		PacketID:    uint16(w.QoS), // non-zero for QoS > 0 (MOCHI-NOTES 8)
	}
	if err := r.srv.InjectPacket(r.inline, pk); err != nil {
		r.log.Error("publish will", logKeyClient, w.ClientID, logKeyTopic, w.Topic, logKeyError, err)
	}
}

// roomSub is one connection's subscription to a room; it implements rooms.Subscriber.
type roomSub struct {
	r    *Router
	c    *conn
	room string
	sub  packets.Subscription

	// sent is the id of the last message that left the outbox; joined is where the
	// subscription started. Together they say where a resumed session continues.
	sent   atomic.Uint64
	joined atomic.Pointer[rooms.Joined]
}

// position returns where a resumed session continues in the room, nil when unknown.
func (s *roomSub) position() *rooms.Resume {
	j := s.joined.Load()
	if j == nil {
		return nil
	}
	return &rooms.Resume{Since: max(s.sent.Load(), j.After), Epoch: j.Epoch}
}

var _ rooms.Subscriber = (*roomSub)(nil)

// Key implements rooms.Subscriber.
func (s *roomSub) Key() string { return s.c.session.ID }

// DeliverRoom implements rooms.Subscriber: v5 subscribers get id, author, timestamp and epoch
// as user properties too.
func (s *roomSub) DeliverRoom(m *rooms.Message) {
	if s.sub.NoLocal && m.Origin == s.c.cl.ID {
		return // [MQTT-3.8.3-3]
	}
	share := m.Cached(func() any { return roomPacket(m) }).(*encodings)
	it := outItem{share: share, qos: s.sub.Qos, mark: &s.sent, id: m.ID}
	if s.c.cl.Properties.ProtocolVersion >= 5 {
		it.subID = s.sub.Identifier
	}
	s.c.out.pushItem(it)
}

// roomPacket returns what every delivery of a room message shares: its packet, with the v5
// user properties id, author, timestamp, epoch (and a bridged message's origin), and its
// encodings.
func roomPacket(m *rooms.Message) *encodings {
	props := []packets.UserProperty{
		{Key: userPropertyID, Val: strconv.FormatUint(m.ID, 10)},
		{Key: userPropertyAuthor, Val: m.Author},
		{Key: userPropertyTimestamp, Val: strconv.FormatInt(m.Timestamp, 10)},
		{Key: userPropertyEpoch, Val: m.Epoch},
	}
	if m.OriginBroker != "" {
		props = append(props,
			packets.UserProperty{Key: wire.PropOriginBroker, Val: m.OriginBroker},
			packets.UserProperty{Key: wire.PropOriginID, Val: strconv.FormatUint(m.OriginID, 10)})
	}
	return &encodings{pk: packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   wire.RoomTopic(m.Room),
		Payload:     m.Payload(),
		Properties:  packets.Properties{User: slices.Clip(props)},
		Created:     time.Now().Unix(),
	}}
}

// RoomRemoved implements rooms.Subscriber: the MQTT subscription ends too, and what was
// queued of the room and not yet written is dropped.
func (s *roomSub) RoomRemoved(room string) {
	s.c.out.drop(&s.sent)
	s.c.mu.Lock()
	if s.c.rooms[room] == s {
		delete(s.c.rooms, room)
	}
	s.c.mu.Unlock()
	s.r.dropSubscription(s.c.cl, wire.RoomTopic(room))
}

func responseInfo(user, clientID string) string {
	return wire.UserRepliesPrefix(user) + clientID
}
