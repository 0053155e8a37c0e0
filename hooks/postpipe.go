package hooks

import (
	"errors"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/wire"
)

// maxPipelinedPosts is how many room posts of one connection may be on their way at once;
// the connection's next packet is read when one of them is done.
const maxPipelinedPosts = 32

// postPipe lets a connection have several room posts on their way at once. Mochi reads a
// connection's next packet only when OnPublish has returned, so a post that waited there for
// its room's access check and its append (two round trips on Redis) would leave one post per
// connection in the broker. Instead, OnPublish hands the post to a goroutine and returns; the
// goroutines of one connection read access concurrently but take their places in the rooms'
// queues in the order the posts arrived, and acknowledge them in that order [MQTT-4.6.0-2].
//
// Only the connection's read goroutine (OnPublish) starts posts and reads last, so they need
// no lock.
type postPipe struct {
	slots chan struct{} // one per post on its way
	// last is the newest post: queued is closed once it has its place in its room's queue
	// (or failed), acked once it has been acknowledged.
	last struct{ queued, acked chan struct{} }
}

func newPostPipe() *postPipe {
	p := &postPipe{slots: make(chan struct{}, maxPipelinedPosts)}
	done := make(chan struct{})
	close(done)
	p.last.queued, p.last.acked = done, done
	return p
}

// drained waits until every post started so far has been acknowledged: a packet that is not a
// room post sees their effects (a history read after a post includes it).
func (p *postPipe) drained() { <-p.last.acked }

// postRoom posts pk to room for c in the background, in order with the connection's other
// posts, and acknowledges it then. It returns what OnPublish returns: Mochi must neither
// acknowledge nor deliver the packet.
func (r *Router) postRoom(c *conn, caller commands.Caller, room string, pk packets.Packet, from wire.Origin) (packets.Packet, error) {
	p := c.posts
	p.slots <- struct{}{} // at most maxPipelinedPosts: beyond, the connection waits here
	prev := p.last
	queued, acked := make(chan struct{}), make(chan struct{})
	p.last.queued, p.last.acked = queued, acked
	job := func() {
		defer func() { <-p.slots }()
		ctx, cancel := r.ctx()
		defer cancel()
		wait := r.commands.BeginPostRoomFrom(ctx, caller, room, pk.Payload, from, func() { <-prev.queued })
		<-prev.queued // also when the post failed before its turn: the order is a chain
		close(queued)
		_, err := wait(ctx)
		<-prev.acked
		r.acknowledgePost(c.cl, pk, err)
		close(acked)
	}
	if !r.spawn(job) {
		job() // shutting down: no more background work
	}
	return pk, packets.ErrRejectPacket
}

// acknowledgePost answers a room post as OnPublish would have: a PUBACK at QoS 1, with the
// reason code of a refusal for v5 clients (see refuse).
func (r *Router) acknowledgePost(cl *mqtt.Client, pk packets.Packet, err error) {
	var out error
	switch {
	case err == nil:
		out = packets.CodeSuccessIgnore
	case errors.Is(err, rooms.ErrDuplicate):
		_, out = r.refuse(cl, pk, packets.CodeSuccess, err) // stored the first time
	default:
		_, out = r.refuse(cl, pk, reasonFor(err), err)
	}
	if errors.Is(out, packets.ErrRejectPacket) || pk.FixedHeader.Qos != 1 {
		return // answered by refuse, or nothing to answer
	}
	_ = cl.WritePacket(ack(pk.PacketID, packets.Puback, packets.CodeSuccess))
}
