package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// listUserlist is the read-only list of the users joined to a room.
const listUserlist = "userlist"

// Operations reported in accessListChanged events.
const (
	opAdd    = "add"
	opRemove = "remove"
)

type listArgs struct {
	Room  string   `json:"room"`
	List  string   `json:"list"`
	Users []string `json:"users"`
}

// checkUsers validates the users argument of a list change.
func checkUsers(users []string) error {
	if len(users) == 0 {
		return wire.NewError(wire.CodeBadArgument, `argument "users": at least one user is required`)
	}
	for _, u := range users {
		if !wire.ValidName(u) {
			return wire.Errorf(wire.CodeInvalidName, `argument "users": invalid user name %q`, u)
		}
	}
	return nil
}

// checkRoomList validates a list name for a change of a room's lists.
func checkRoomList(list string) error {
	switch list {
	case store.ListAdmins, store.ListBlacklist, store.ListWhitelist:
		return nil
	case listUserlist:
		return wire.NewError(wire.CodeNotAllowed, "the userlist changes by joining and leaving")
	}
	return wire.Errorf(wire.CodeNoList, "no list %q", list)
}

// canChangeList reports whether the caller may change list of the room in a: the owner (and
// global admins) manage the adminlist, managers the other lists.
func (s *Service) canChangeList(a acl.RoomAccess, c Caller, list string) bool {
	if list == store.ListAdmins {
		return s.policy.CanManageAdmins(a, c.Identity)
	}
	return s.policy.CanManage(a, c.Identity)
}

func (s *Service) roomGetAccessList(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	var a listArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.List != listUserlist {
		if err := checkRoomList(a.List); err != nil {
			return nil, err
		}
	}
	if _, err := s.readable(ctx, c, a.Room); err != nil {
		return nil, err
	}
	var users []string
	var err error
	if a.List == listUserlist {
		users, err = s.rooms.Users(ctx, a.Room)
	} else {
		users, err = s.lists.ListUsers(ctx, store.RoomScope(a.Room), a.List)
	}
	if err != nil {
		return nil, err
	}
	if users == nil {
		users = []string{}
	}
	return users, nil
}

func (s *Service) roomAddToList(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	return s.changeRoomList(ctx, c, args, opAdd)
}

func (s *Service) roomRemoveFromList(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	return s.changeRoomList(ctx, c, args, opRemove)
}

// changeRoomList adds users to or removes them from a room's list, then removes at once the
// users who lost access, and tells the room when it wants access list updates.
func (s *Service) changeRoomList(ctx context.Context, c Caller, args json.RawMessage, op string) (any, error) {
	var a listArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkRoomList(a.List); err != nil {
		return nil, err
	}
	if err := checkUsers(a.Users); err != nil {
		return nil, err
	}
	access, err := s.access(ctx, c, a.Room)
	if err != nil {
		return nil, err
	}
	if !s.canChangeList(access, c, a.List) {
		return nil, fmt.Errorf("change %s of room %q: %w", a.List, a.Room, acl.ErrNotAllowed)
	}
	if op == opAdd && a.List == store.ListBlacklist && slices.Contains(a.Users, access.Room.Owner) {
		return nil, wire.NewError(wire.CodeNotAllowed, "the owner cannot be blacklisted")
	}
	scope := store.RoomScope(a.Room)
	var changed []string
	if op == opAdd {
		changed, err = s.lists.ListAdd(ctx, scope, a.List, a.Users, s.listLimit)
	} else {
		changed, err = s.lists.ListRemove(ctx, scope, a.List, a.Users)
	}
	if err != nil {
		return nil, fmt.Errorf("change %s of room %q: %w", a.List, a.Room, err)
	}
	if len(changed) == 0 {
		return struct{}{}, nil
	}
	if access.Room.NotifyAccessLists {
		s.transport.RoomEvent(a.Room, wire.NewEvent(wire.EventAccessListChanged, map[string]any{
			"room": a.Room, "list": a.List, "users": changed, "op": op,
		}))
	}
	if err := s.removeLostAccess(ctx, a.Room, changed); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// removeLostAccess removes from room, on every connection, the joined users among candidates
// (all joined users when candidates is nil) who may no longer join it.
func (s *Service) removeLostAccess(ctx context.Context, room string, candidates []string) error {
	joined, err := s.rooms.Users(ctx, room)
	if err != nil {
		return err
	}
	for _, user := range joined {
		if candidates != nil && !slices.Contains(candidates, user) {
			continue
		}
		ua, err := acl.LoadRoomAccess(ctx, s.lists, room, user)
		if err != nil {
			return err
		}
		if s.policy.CanJoin(ua, s.identityOf(ctx, user)) {
			continue
		}
		if err := s.rooms.RemoveUser(ctx, room, user); err != nil {
			return err
		}
	}
	return nil
}

// identityOf returns the identity of a user for permission checks on their behalf: the roles
// of one of their connections on this instance, or none.
func (s *Service) identityOf(_ context.Context, user string) acl.Identity {
	if sessions := s.devices.UserSessions(user); len(sessions) > 0 {
		return sessions[0].Identity
	}
	return acl.Identity{User: user}
}

type whitelistModeResult struct {
	WhitelistOnly bool `json:"whitelistOnly"`
}

func (s *Service) roomGetWhitelistMode(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	a, err := s.readableFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	return whitelistModeResult{a.Room.WhitelistOnly}, nil
}

func (s *Service) roomSetWhitelistMode(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	var a struct {
		Room string `json:"room"`
		Mode *bool  `json:"mode"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.Mode == nil {
		return nil, wire.NewError(wire.CodeBadArgument, `argument "mode" is required: true for whitelist-only`)
	}
	access, err := s.access(ctx, c, a.Room)
	if err != nil {
		return nil, err
	}
	if !s.policy.CanManage(access, c.Identity) {
		return nil, fmt.Errorf("set mode of room %q: %w", a.Room, acl.ErrNotAllowed)
	}
	changed, err := s.lists.SetWhitelistOnly(ctx, store.RoomScope(a.Room), *a.Mode)
	if err != nil {
		return nil, fmt.Errorf("set mode of room %q: %w", a.Room, err)
	}
	if changed {
		if access.Room.NotifyAccessLists {
			s.transport.RoomEvent(a.Room, wire.NewEvent(wire.EventModeChanged, map[string]any{
				"room": a.Room, "whitelistOnly": *a.Mode,
			}))
		}
		if *a.Mode {
			if err := s.removeLostAccess(ctx, a.Room, nil); err != nil {
				return nil, err
			}
		}
	}
	return whitelistModeResult{*a.Mode}, nil
}

// checkDirectList validates a list name of direct-message lists.
func checkDirectList(list string) error {
	switch list {
	case store.ListBlacklist, store.ListWhitelist:
		return nil
	}
	return wire.Errorf(wire.CodeNoList, "no direct-message list %q", list)
}

func (s *Service) directAddToList(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	return s.changeDirectList(ctx, c, args, opAdd)
}

func (s *Service) directRemoveFromList(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	return s.changeDirectList(ctx, c, args, opRemove)
}

// changeDirectList changes one of the caller's own direct-message lists.
func (s *Service) changeDirectList(ctx context.Context, c Caller, args json.RawMessage, op string) (any, error) {
	var a listArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkDirectList(a.List); err != nil {
		return nil, err
	}
	if err := checkUsers(a.Users); err != nil {
		return nil, err
	}
	scope := store.DirectScope(c.Identity.User)
	var err error
	if op == opAdd {
		_, err = s.lists.ListAdd(ctx, scope, a.List, a.Users, s.listLimit)
	} else {
		_, err = s.lists.ListRemove(ctx, scope, a.List, a.Users)
	}
	if err != nil {
		return nil, fmt.Errorf("change direct-message %s: %w", a.List, err)
	}
	return struct{}{}, nil
}

func (s *Service) directGetAccessList(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	var a listArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkDirectList(a.List); err != nil {
		return nil, err
	}
	return s.lists.ListUsers(ctx, store.DirectScope(c.Identity.User), a.List)
}

func (s *Service) directGetWhitelistMode(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &struct{}{}); err != nil {
		return nil, err
	}
	_, on, _, err := s.lists.Access(ctx, store.DirectScope(c.Identity.User), c.Identity.User)
	if err != nil {
		return nil, err
	}
	return whitelistModeResult{on}, nil
}

func (s *Service) directSetWhitelistMode(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	var a struct {
		Mode *bool `json:"mode"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.Mode == nil {
		return nil, wire.NewError(wire.CodeBadArgument, `argument "mode" is required: true for whitelist-only`)
	}
	if _, err := s.lists.SetWhitelistOnly(ctx, store.DirectScope(c.Identity.User), *a.Mode); err != nil {
		return nil, err
	}
	return whitelistModeResult{*a.Mode}, nil
}
