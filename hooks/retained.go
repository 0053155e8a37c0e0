package hooks

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The router sends the retained messages a SUBSCRIBE asks for, through the connection's
// outbox, instead of Mochi. Mochi v2.7.9 pushes them into the connection's outbound channel
// without waiting (limits.max_pending_writes slots) and drops the rest silently: a client that
// subscribed to presence/+ with more users online than that missed the others. The outbox
// queues them all, in order.

// retainWanted is a filter of the SUBSCRIBE being processed whose retained messages the router
// sends: its place in the packet, and its Retain Handling before OnSubscribe set it to 2 (do
// not send) for Mochi.
type retainWanted struct {
	index    int
	filter   string
	handling byte
	existed  bool // the connection had the subscription already
}

// OnSubscribe takes the retained messages of the SUBSCRIBE's filters over from Mochi: it
// notes what each filter asks for and tells Mochi to send none.
func (r *Router) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	c, ok := r.conn(cl)
	if !ok {
		return pk
	}
	c.retainWanted = c.retainWanted[:0] // only the client's read goroutine gets here
	for i, sub := range pk.Filters {
		if sub.RetainHandling == 2 || mqtt.IsSharedFilter(sub.Filter) {
			continue // none asked for; none for a shared subscription (MQTT 5 4.8.2)
		}
		_, existed := cl.State.Subscriptions.Get(sub.Filter)
		c.retainWanted = append(c.retainWanted, retainWanted{index: i, filter: sub.Filter, handling: sub.RetainHandling, existed: existed})
		pk.Filters[i].RetainHandling = 2
	}
	return pk
}

// sendRetained queues, after a SUBSCRIBE, the retained messages its granted filters asked for
// [MQTT-3.8.4-4] [MQTT-3.3.1-10] [MQTT-3.3.1-11], with the RETAIN flag [MQTT-3.3.1-9], as
// Mochi's publishRetainedToClient would have. (Mochi's stored subscriptions keep Retain
// Handling 2: it only matters when a SUBSCRIBE is processed.)
func (r *Router) sendRetained(c *conn, pk packets.Packet, reasonCodes []byte) {
	wanted := c.retainWanted
	c.retainWanted = c.retainWanted[:0]
	for _, w := range wanted {
		if w.index >= len(pk.Filters) || w.index >= len(reasonCodes) || pk.Filters[w.index].Filter != w.filter ||
			reasonCodes[w.index] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		sub := pk.Filters[w.index]
		if w.handling == 1 && w.existed {
			continue
		}
		for _, m := range r.srv.Topics.Messages(w.filter) {
			if sub.NoLocal && m.Origin == c.cl.ID {
				continue // [MQTT-3.8.3-3]
			}
			if !r.auth.OnACLCheck(c.cl, m.TopicName, false) {
				continue
			}
			out := packetFor(c, sub, m)
			out.FixedHeader.Retain = true
			c.out.pushRetained(out)
		}
	}
}
