package hooks

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/wire"
)

// OnSubscribed joins the rooms of the granted room filters. Mochi calls it before writing the
// SUBACK; the replay of a resume is queued before any live message of the room (the join and
// the replay happen under the room's lock), so the client may see history before the SUBACK.
func (r *Router) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	c, ok := r.conn(cl)
	if !ok {
		return
	}
	r.addRoutes(pk, reasonCodes)
	ctx, cancel := r.ctx()
	defer cancel()
	for i, sub := range pk.Filters {
		if i >= len(reasonCodes) || reasonCodes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		t := wire.ParseTopic(sub.Filter)
		if t.Kind != wire.TopicRoom || wire.IsWildcard(sub.Filter) {
			continue
		}
		resume := resumeFrom(pk.Properties.User, t.Name, len(pk.Filters) == 1)
		caller := commands.Caller{Identity: c.session.Identity, ClientID: cl.ID, Conn: c.hook}
		if err := r.commands.NativeRoom(ctx, caller, commands.CommandRoomJoin, t.Name, func(ctx context.Context) (rooms.Joined, error) {
			return r.joinRoom(ctx, c, t.Name, sub, resume)
		}); err != nil {
			// The room went away between the ACL check and now, or a hook refused the join.
			r.log.Info("join refused", logKeyClient, cl.ID, logKeyRoom, t.Name, logKeyError, err)
			r.dropSubscription(cl, sub.Filter)
			r.leaveIfJoined(ctx, c, t.Name)
			reasonCodes[i] = refusedSubscription(cl, err).Code // written after this hook
		}
	}
	r.sendRetained(c, pk, reasonCodes)
}

// resumeFrom reads the resume position of room from the user properties of a SUBSCRIBE:
// since:{room} and epoch:{room}, or since and epoch when the SUBSCRIBE has one filter.
func resumeFrom(props []packets.UserProperty, room string, single bool) *rooms.Resume {
	var res *rooms.Resume
	for _, p := range props {
		var since, epoch bool
		switch {
		case p.Key == userPropertySinceRoom+room:
			since = true
		case p.Key == userPropertyEpochRoom+room:
			epoch = true
		case single && p.Key == userPropertySince:
			since = true
		case single && p.Key == userPropertyEpoch:
			epoch = true
		default:
			continue
		}
		if res == nil {
			res = &rooms.Resume{}
		}
		if since {
			n, err := strconv.ParseUint(strings.TrimSpace(p.Val), 10, 64)
			if err == nil {
				res.Since = n
			}
		}
		if epoch {
			res.Epoch = p.Val
		}
	}
	return res
}

// joinRoom joins connection c to room with the subscription options sub.
func (r *Router) joinRoom(ctx context.Context, c *conn, room string, sub packets.Subscription, resume *rooms.Resume) (rooms.Joined, error) {
	if sub.Qos > r.srv.Options.Capabilities.MaximumQos {
		sub.Qos = r.srv.Options.Capabilities.MaximumQos
	}
	rs := &roomSub{r: r, c: c, room: room, sub: sub}
	j, err := r.rooms.Join(ctx, rooms.Join{
		Room:       room,
		User:       c.session.Identity.User,
		ClientID:   c.cl.ID,
		Subscriber: rs,
		Resume:     resume,
	})
	if err != nil {
		return j, err
	}
	rs.joined.Store(&j)
	c.mu.Lock()
	c.rooms[room] = rs
	c.mu.Unlock()
	r.commandHooks().Joined(ctx, c.hook, room)
	return j, nil
}

// OnUnsubscribed leaves the rooms of the removed room filters (also when Mochi removes every
// subscription of an ending session).
func (r *Router) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	c, ok := r.conn(cl)
	if !ok {
		return
	}
	ctx, cancel := r.ctx()
	defer cancel()
	for _, sub := range pk.Filters {
		if t := wire.ParseTopic(sub.Filter); t.Kind == wire.TopicRoom {
			caller := commands.Caller{Identity: c.session.Identity, ClientID: cl.ID, Conn: c.hook}
			if err := r.commands.NativeRoom(ctx, caller, commands.CommandRoomLeave, t.Name, func(ctx context.Context) (rooms.Joined, error) {
				return r.leaveRoom(ctx, c, t.Name)
			}); err != nil {
				r.log.Error("leave room", logKeyClient, cl.ID, logKeyRoom, t.Name, logKeyError, err)
			}
		}
	}
}

func (r *Router) leaveRoom(ctx context.Context, c *conn, room string) (rooms.Joined, error) {
	c.mu.Lock()
	_, was := c.rooms[room]
	delete(c.rooms, room)
	c.mu.Unlock()
	j, err := r.rooms.Leave(ctx, room, c.session.Identity.User, c.cl.ID, c.session.ID)
	if was && err == nil {
		r.commandHooks().Left(ctx, c.hook, room)
	}
	return j, err
}

// dropSubscription removes a subscription from Mochi, as an UNSUBSCRIBE would, without an
// UNSUBACK: the broker ended it.
func (r *Router) dropSubscription(cl *mqtt.Client, filter string) {
	if r.srv.Topics.Unsubscribe(filter, cl.ID) {
		atomic.AddInt64(&r.srv.Info.Subscriptions, -1)
	}
	cl.State.Subscriptions.Delete(filter)
}

// JoinRoom implements commands.Transport: a server-side SUBSCRIBE of the calling connection to
// rooms/{room} at QoS 1.
func (r *Router) JoinRoom(ctx context.Context, user, clientID, room string) (rooms.Joined, error) {
	c, ok := r.connByID(clientID)
	if !ok || c.session.Identity.User != user {
		return rooms.Joined{}, wire.Errorf(wire.CodeBadArgument, "connection %q is not on this instance", clientID)
	}
	sub := packets.Subscription{Filter: wire.RoomTopic(room), Qos: 1}
	if r.srv.Topics.Subscribe(clientID, sub) {
		atomic.AddInt64(&r.srv.Info.Subscriptions, 1)
	}
	c.cl.State.Subscriptions.Add(sub.Filter, sub)
	j, err := r.joinRoom(ctx, c, room, sub, nil)
	if err != nil {
		r.dropSubscription(c.cl, sub.Filter)
	}
	return j, err
}

// LeaveRoom implements commands.Transport: a server-side UNSUBSCRIBE.
func (r *Router) LeaveRoom(ctx context.Context, user, clientID, room string) (rooms.Joined, error) {
	c, ok := r.connByID(clientID)
	if !ok || c.session.Identity.User != user {
		return rooms.Joined{}, wire.Errorf(wire.CodeBadArgument, "connection %q is not on this instance", clientID)
	}
	r.dropSubscription(c.cl, wire.RoomTopic(room))
	return r.leaveRoom(ctx, c, room)
}

// Disconnect implements commands.Transport. v5 clients get DISCONNECT 0x98 (administrative
// action).
func (r *Router) Disconnect(clientID string) bool {
	cl, ok := r.srv.Clients.Get(clientID)
	if !ok || cl.Closed() {
		if r.opts.Broadcast == nil {
			return false
		}
		r.broadcast(envelope{Kind: kindDisconnect, Client: clientID}) // its instance does it
		return true
	}
	r.kick(cl, packets.ErrAdministrativeAction)
	return true
}

// kick ends a connection without waiting: v5 clients get a DISCONNECT with code, v3.1.1
// clients (which have no server DISCONNECT) just lose the connection. Writing the DISCONNECT
// may block on a slow client, so it happens in a goroutine of the router.
func (r *Router) kick(cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion < 5 || !r.spawn(func() { _ = r.srv.DisconnectClient(cl, code) }) {
		r.spawn(func() { cl.Stop(code) })
	}
}
