package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

type roomArgs struct {
	Room string `json:"room"`
}

// access validates a room name and loads the room with the caller's standing in it.
func (s *Service) access(ctx context.Context, c Caller, room string) (acl.RoomAccess, error) {
	if err := requireName("room", room); err != nil {
		return acl.RoomAccess{}, err
	}
	return acl.LoadRoomAccess(ctx, s.lists, room, c.Identity.User)
}

// accessFromArgs decodes arguments that name only a room, and loads the caller's access.
func (s *Service) accessFromArgs(ctx context.Context, c Caller, args json.RawMessage) (acl.RoomAccess, error) {
	var a roomArgs
	if err := decodeArgs(args, &a); err != nil {
		return acl.RoomAccess{}, err
	}
	return s.access(ctx, c, a.Room)
}

// readableFromArgs decodes arguments that name only a room, and loads it if the caller may
// read it.
func (s *Service) readableFromArgs(ctx context.Context, c Caller, args json.RawMessage) (acl.RoomAccess, error) {
	var a roomArgs
	if err := decodeArgs(args, &a); err != nil {
		return acl.RoomAccess{}, err
	}
	return s.readable(ctx, c, a.Room)
}

// readable loads a room the caller may read: joined and allowed in, or a manager.
func (s *Service) readable(ctx context.Context, c Caller, room string) (acl.RoomAccess, error) {
	a, err := s.access(ctx, c, room)
	if err != nil {
		return a, err
	}
	if s.policy.CanManage(a, c.Identity) {
		return a, nil
	}
	joined, _, err := s.rooms.UserSeen(ctx, room, c.Identity.User)
	if err != nil {
		return a, err
	}
	if !s.policy.CanRead(a, c.Identity, joined) {
		if joined {
			return a, fmt.Errorf("read room %q: %w", room, acl.ErrNotAllowed)
		}
		return a, fmt.Errorf("read room %q: %w", room, acl.ErrNotJoined)
	}
	return a, nil
}

func (s *Service) roomCreate(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	var a struct {
		Room          string `json:"room"`
		WhitelistOnly bool   `json:"whitelistOnly"`
		Checker       string `json:"checker"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := requireName("room", a.Room); err != nil {
		return nil, err
	}
	if !s.manage && !c.Identity.IsAdmin() {
		return nil, fmt.Errorf("create room: %w: rooms management is disabled", acl.ErrNotAllowed)
	}
	if s.maxRooms > 0 && !c.Identity.IsAdmin() {
		owned, err := s.rooms.CountOwned(ctx, c.Identity.User)
		if err != nil {
			return nil, err
		}
		if owned >= s.maxRooms {
			return nil, fmt.Errorf("create room: %w: you own %d rooms, the most a user may own", acl.ErrNotAllowed, owned)
		}
	}
	if a.Checker != "" {
		if _, ok := s.rooms.Checkers().Get(a.Checker); !ok {
			return nil, badArgument("checker", "no checker named %q", a.Checker)
		}
	}
	room := s.defaults
	room.Name, room.Owner, room.WhitelistOnly, room.Checker = a.Room, c.Identity.User, a.WhitelistOnly, a.Checker
	if err := s.rooms.Create(ctx, room); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Service) roomDelete(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	a, err := s.accessFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	if !s.policy.CanManageAdmins(a, c.Identity) { // the owner (or a global admin) only
		return nil, fmt.Errorf("delete room %q: %w", a.Room.Name, acl.ErrNotAllowed)
	}
	if err := s.rooms.Delete(ctx, a.Room.Name); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type connectionsResult struct {
	Connections int `json:"connections"`
}

func (s *Service) roomJoin(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	a, err := s.accessFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	if !s.policy.CanJoin(a, c.Identity) {
		return nil, fmt.Errorf("join room %q: %w", a.Room.Name, acl.ErrNotAllowed)
	}
	if c.ClientID == "" {
		return nil, wire.NewError(wire.CodeBadArgument, "roomJoin needs a calling connection")
	}
	j, err := s.transport.JoinRoom(ctx, c.Identity.User, c.ClientID, a.Room.Name)
	if err != nil {
		return nil, err
	}
	return connectionsResult{j.Connections}, nil
}

func (s *Service) roomLeave(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	a, err := s.accessFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	if c.ClientID == "" {
		return nil, wire.NewError(wire.CodeBadArgument, "roomLeave needs a calling connection")
	}
	j, err := s.transport.LeaveRoom(ctx, c.Identity.User, c.ClientID, a.Room.Name)
	if err != nil {
		return nil, err
	}
	if !j.Changed {
		return nil, wire.Errorf(wire.CodeNotJoined, "connection %q is not joined to room %q", c.ClientID, a.Room.Name)
	}
	return connectionsResult{j.Connections}, nil
}

// PostRoom posts payload to room as the caller: the native equivalent of roomMessage, through
// its hooks. It returns a nil message and no error when a Before hook ended the call with a
// result. With hooks registered for roomMessage it reads the room once more, to give the
// hooks the message in its RPC form.
func (s *Service) PostRoom(ctx context.Context, c Caller, room string, payload []byte) (*rooms.Message, error) {
	return s.PostRoomFrom(ctx, c, room, payload, wire.Origin{})
}

// PostRoomFrom is PostRoom for a message first posted on another broker (a bridge's message;
// the zero Origin for none): the room stores that origin with the message and delivers it as
// user properties origin-broker and origin-id; a message sent twice gets rooms.ErrDuplicate.
// The roomMessage hooks run as for any native message (they do not see the origin).
func (s *Service) PostRoomFrom(ctx context.Context, c Caller, room string, payload []byte, from wire.Origin) (*rooms.Message, error) {
	if !s.hooks.active(CommandRoomMessage) {
		return s.postRoomFrom(ctx, c, room, payload, from)
	}
	message, wrapped := json.RawMessage(payload), false
	r, err := s.rooms.Room(ctx, room)
	if !json.Valid(payload) || (err == nil && r.Checker == rooms.CheckerBinary) {
		message, wrapped = binaryJSON(payload), true
	}
	args, err := json.Marshal(struct {
		Room    string          `json:"room"`
		Message json.RawMessage `json:"message"`
	}{room, message})
	if err != nil {
		return nil, fmt.Errorf("post to room %q: %w", room, err)
	}
	call := &Call{Caller: c, Command: CommandRoomMessage, Args: args, Native: true, wrapped: wrapped}
	out := s.hooks.run(ctx, call, func(ctx context.Context, call *Call) (any, error) {
		return s.postMessageArgs(ctx, call.Caller, call.Args, call.wrapped, from)
	})
	return out.Message, out.Err
}

// binaryJSON returns payload in the {"binary": "<base64>"} form.
func binaryJSON(payload []byte) json.RawMessage {
	b, _ := json.Marshal(struct {
		Binary []byte `json:"binary"`
	}{payload}) // cannot fail
	return b
}

// BeginPostRoomFrom starts what PostRoomFrom does and returns once the post has its place in
// the room's queue, or has failed: wait, which must be called once, returns what PostRoomFrom
// returns. turn, when not nil, is called right before the post takes its place: a caller that
// starts several posts makes it wait until the previous one has returned from
// BeginPostRoomFrom, so that their access reads overlap while they keep their order. With
// roomMessage hooks registered, the whole post runs at once (after turn), through them.
func (s *Service) BeginPostRoomFrom(ctx context.Context, c Caller, room string, payload []byte, from wire.Origin, turn func()) (wait func(context.Context) (*rooms.Message, error)) {
	done := func(m *rooms.Message, err error) func(context.Context) (*rooms.Message, error) {
		return func(context.Context) (*rooms.Message, error) { return m, err }
	}
	if turn == nil {
		turn = func() {}
	}
	if s.hooks.active(CommandRoomMessage) {
		turn()
		return done(s.PostRoomFrom(ctx, c, room, payload, from))
	}
	a, err := s.access(ctx, c, room)
	if err != nil {
		return done(nil, err)
	}
	if !s.policy.CanPost(a, c.Identity) {
		return done(nil, fmt.Errorf("post to room %q: %w", room, acl.ErrNotAllowed))
	}
	turn()
	w, err := s.rooms.EnqueueBridged(a.Room, c.Identity.User, c.ClientID, payload, from)
	if err != nil {
		return done(nil, err)
	}
	return w
}

// postRoomFrom is PostRoomFrom without hooks.
func (s *Service) postRoomFrom(ctx context.Context, c Caller, room string, payload []byte, from wire.Origin) (*rooms.Message, error) {
	a, err := s.access(ctx, c, room)
	if err != nil {
		return nil, err
	}
	if !s.policy.CanPost(a, c.Identity) {
		return nil, fmt.Errorf("post to room %q: %w", room, acl.ErrNotAllowed)
	}
	return s.rooms.PostBridged(ctx, a.Room, c.Identity.User, c.ClientID, payload, from)
}

func (s *Service) roomMessage(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	return s.postMessageArgs(ctx, c, args, false, wire.Origin{})
}

// postMessageArgs posts the message of roomMessage arguments. The message is the payload, or
// its {"binary": "<base64>"} form in binary rooms and when wrapped (a native payload that is
// not JSON). from is the origin of a bridged message.
func (s *Service) postMessageArgs(ctx context.Context, c Caller, args json.RawMessage, wrapped bool, from wire.Origin) (any, error) {
	var a struct {
		Room    string          `json:"room"`
		Message json.RawMessage `json:"message"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := requireValue("message", a.Message); err != nil {
		return nil, err
	}
	payload := []byte(a.Message)
	if r, err := s.rooms.Room(ctx, a.Room); wrapped || (err == nil && r.Checker == rooms.CheckerBinary) {
		var b struct {
			Binary []byte `json:"binary"`
		}
		if err := json.Unmarshal(a.Message, &b); err != nil || b.Binary == nil {
			return nil, badArgument("message", `a binary room takes {"binary": "<base64>"}`)
		}
		payload = b.Binary
	}
	m, err := s.postRoomFrom(ctx, c, a.Room, payload, from)
	if err != nil {
		return nil, err
	}
	return &MessageResult{ID: m.ID, Message: m}, nil
}

func (s *Service) roomHistoryInfo(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	a, err := s.readableFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	return s.rooms.HistoryInfo(ctx, a.Room.Name)
}

func (s *Service) roomHistoryGet(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	var a struct {
		Room  string `json:"room"`
		ID    uint64 `json:"id"`
		Limit int    `json:"limit"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.Limit < 0 {
		return nil, badArgument("limit", "must not be negative")
	}
	if _, err := s.readable(ctx, c, a.Room); err != nil {
		return nil, err
	}
	msgs, err := s.rooms.HistoryJSON(ctx, a.Room, a.ID, a.Limit)
	if err != nil {
		return nil, err
	}
	return msgs, nil
}

func (s *Service) roomRecentHistory(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	a, err := s.readableFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	msgs, err := s.rooms.RecentJSON(ctx, a.Room.Name)
	if err != nil {
		return nil, err
	}
	return msgs, nil
}

// MaxListedRooms caps the rooms that roomList returns.
const MaxListedRooms = 1000

// roomList returns the rooms the caller may join, sorted by name, at most MaxListedRooms.
func (s *Service) roomList(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &struct{}{}); err != nil {
		return nil, err
	}
	names, err := s.rooms.Names(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, min(len(names), MaxListedRooms))
	for _, name := range names {
		if len(out) == MaxListedRooms {
			break
		}
		a, err := s.access(ctx, c, name)
		switch {
		case errors.Is(err, store.ErrNoRoom):
			continue // deleted meanwhile
		case err != nil:
			return nil, err
		}
		if s.policy.CanJoin(a, c.Identity) {
			out = append(out, name)
		}
	}
	return out, nil
}

func (s *Service) roomGetOwner(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	a, err := s.readableFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	return struct {
		Owner string `json:"owner"`
	}{a.Room.Owner}, nil
}

func (s *Service) roomUserSeen(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	var a struct {
		Room string `json:"room"`
		User string `json:"user"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := requireName("user", a.User); err != nil {
		return nil, err
	}
	if _, err := s.readable(ctx, c, a.Room); err != nil {
		return nil, err
	}
	joined, at, err := s.rooms.UserSeen(ctx, a.Room, a.User)
	if err != nil {
		return nil, err
	}
	return struct {
		Joined    bool  `json:"joined"`
		Timestamp int64 `json:"timestamp"`
	}{joined, at}, nil
}

func (s *Service) roomNotificationsInfo(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	a, err := s.readableFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	return struct {
		EnableAccessListsUpdates bool `json:"enableAccessListsUpdates"`
		EnableUserlistUpdates    bool `json:"enableUserlistUpdates"`
	}{a.Room.NotifyAccessLists, a.Room.NotifyUserlist}, nil
}
