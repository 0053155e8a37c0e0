package broker

import (
	"context"
	"fmt"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/wire"
)

// PushDirect sends a direct message from user from to user to on behalf of a trusted backend,
// and returns its timestamp (milliseconds). payload is what a client would publish to
// users/{to}/inbox ({"textMessage": ...}); it is checked and enriched with author (from) and
// timestamp like one, and reaches every connection of to on every instance, MQTT subscribers
// of users/{to}/inbox and gateway (/v1/ws) connections alike. from's other connections get a
// directMessageEcho. The backend speaks with the rights of an admin: to's direct-message
// lists do not apply. Errors carry a wire code: invalidName, badMessage, notAllowed (from ==
// to), noUserOnline when to has no connection, storeUnavailable. The admin API's
// POST /api/users/{user}/messages calls this method.
func (b *Broker) PushDirect(ctx context.Context, from, to string, payload []byte) (int64, error) {
	if !wire.ValidName(from) {
		return 0, wire.Errorf(wire.CodeInvalidName, "invalid sender %q", from)
	}
	caller := commands.Caller{Identity: acl.Identity{User: from, Roles: []string{acl.RoleAdmin}}}
	ts, err := b.commands.SendDirect(ctx, caller, to, payload)
	if err != nil {
		return 0, fmt.Errorf("push direct message: %w", err)
	}
	return ts, nil
}
