package hooks

import (
	"errors"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/metrics"
	"github.com/roomq/roomq/wire"
)

var _ metrics.Local = (*Router)(nil)

// messageKind returns the metrics kind of a PUBLISH to a topic of kind k.
func messageKind(k wire.TopicKind) string {
	switch k {
	case wire.TopicRoom:
		return metrics.KindRoom
	case wire.TopicUserInbox:
		return metrics.KindDirect
	case wire.TopicRPC:
		return metrics.KindRPC
	}
	return metrics.KindPlain
}

// UsersOnline implements metrics.Local: the distinct users with a connection here.
func (r *Router) UsersOnline() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	users := make(map[string]struct{}, len(r.conns))
	for _, c := range r.conns {
		users[c.session.Identity.User] = struct{}{}
	}
	return len(users)
}

// ActiveRooms implements metrics.Local: the rooms joined by at least one connection here.
func (r *Router) ActiveRooms() int {
	r.mu.Lock()
	conns := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	joined := make(map[string]struct{})
	for _, c := range conns {
		c.mu.Lock()
		for room := range c.rooms {
			joined[room] = struct{}{}
		}
		c.mu.Unlock()
	}
	return len(joined)
}

// countRefusal counts a CONNECT that OnConnect refused with a reason code.
func (a *Auth) countRefusal(err error) {
	var code packets.Code
	if err != nil && errors.As(err, &code) {
		a.metrics.ConnectionRefused(code)
	}
}
