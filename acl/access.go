package acl

import (
	"context"
	"fmt"

	"github.com/roomq/roomq/store"
)

// RoomAccess is what the permission rules need to know of one user in one room.
type RoomAccess struct {
	// Room is the room, with its current mode.
	Room store.Room
	// Listed tells which of the room's lists hold the user.
	Listed store.Listed
}

// DirectAccess is what the permission rules need to know of a direct message's sender in the
// recipient's direct-message lists.
type DirectAccess struct {
	// To is the recipient.
	To string
	// WhitelistOnly is the recipient's direct-message mode.
	WhitelistOnly bool
	// Listed tells which of the recipient's lists hold the sender.
	Listed store.Listed
}

// LoadRoomAccess reads what the rules need about user in room, in one store call.
func LoadRoomAccess(ctx context.Context, s store.AccessLists, room, user string) (RoomAccess, error) {
	r, _, listed, err := s.Access(ctx, store.RoomScope(room), user)
	if err != nil {
		return RoomAccess{}, fmt.Errorf("access to room %q: %w", room, err)
	}
	return RoomAccess{Room: r, Listed: listed}, nil
}

// LoadDirectAccess reads what the rules need about a direct message from user from to user to.
func LoadDirectAccess(ctx context.Context, s store.AccessLists, to, from string) (DirectAccess, error) {
	_, on, listed, err := s.Access(ctx, store.DirectScope(to), from)
	if err != nil {
		return DirectAccess{}, fmt.Errorf("direct access to %q: %w", to, err)
	}
	return DirectAccess{To: to, WhitelistOnly: on, Listed: listed}, nil
}

// The room rules follow the chat service this broker models: the owner manages the room's
// admins, the owner and admins manage the other lists and the mode, users with the global
// admin role may do everything, and nobody can lock out the owner or an admin.

// CanManageAdmins reports whether id may change the room's adminlist or delete the room: its
// owner, or a global admin.
func (Policy) CanManageAdmins(a RoomAccess, id Identity) bool {
	return id.IsAdmin() || a.Room.Owner == id.User
}

// CanManage reports whether id may manage the room: change its blacklist, whitelist and mode,
// and read it without joining. The owner, the room's admins and global admins may.
func (p Policy) CanManage(a RoomAccess, id Identity) bool {
	return p.CanManageAdmins(a, id) || a.Listed.Admin
}

// CanJoin reports whether id may join the room (subscribe to it or its events) and post to
// it. Managers always may. Otherwise a whitelist-only room needs the whitelist, and a
// blacklisted user may not.
func (p Policy) CanJoin(a RoomAccess, id Identity) bool {
	if p.CanManage(a, id) {
		return true
	}
	if a.Listed.Blacklisted {
		return false
	}
	return !a.Room.WhitelistOnly || a.Listed.Whitelisted
}

// CanPost reports whether id may post to the room. Posting needs access, not a joined
// connection: devices publish without subscribing.
func (p Policy) CanPost(a RoomAccess, id Identity) bool { return p.CanJoin(a, id) }

// CanRead reports whether id may read the room's history, lists and info: it needs to be
// joined (and still allowed in), or to manage the room.
func (p Policy) CanRead(a RoomAccess, id Identity, joined bool) bool {
	return p.CanManage(a, id) || (joined && p.CanJoin(a, id))
}

// CanDirect reports whether from may send a direct message as described by a. Nobody sends
// to themselves; global admins may send to anyone; otherwise the recipient's whitelist-only
// mode needs the whitelist, and their blacklist refuses.
func (Policy) CanDirect(a DirectAccess, from Identity) bool {
	if from.User == a.To {
		return false
	}
	if from.IsAdmin() {
		return true
	}
	if a.Listed.Blacklisted {
		return false
	}
	return !a.WhitelistOnly || a.Listed.Whitelisted
}
