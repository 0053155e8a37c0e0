package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/wire"
)

// API is the server-side API of a broker, for Go programs that embed it and for the admin
// HTTP API: run any command as any user, with or without permission checks, manage rooms,
// post as the system, send events and direct messages, read presence and disconnect users.
// Calls that run a command go through its hooks, with an empty Caller.ClientID. Errors carry
// wire codes (wire.CodeOf). An API is safe for concurrent use.
type API struct {
	s      *Service
	system string
}

// NewAPI returns the server-side API of s. system is the user that authors what the system
// posts (room messages, direct messages, rooms created without an owner): a valid user name
// that gets the admin role in those calls, usually the broker's first admin.
func NewAPI(s *Service, system string) (*API, error) {
	if !wire.ValidName(system) {
		return nil, fmt.Errorf("commands: system user %q: %w", system, wire.ErrInvalidName)
	}
	return &API{s: s, system: system}, nil
}

// SystemUser returns the user that authors what the system posts.
func (a *API) SystemUser() string { return a.system }

// ExecRequest is a command run through the server-side API.
type ExecRequest struct {
	// User runs the command. Required.
	User string
	// Command is the command name, as in docs/protocol.md. Required.
	Command string
	// Args are the command's JSON object arguments; nil means none.
	Args json.RawMessage
	// ClientID, when set, names one of the user's connections on this instance as the
	// calling connection (roomJoin and roomLeave need one; echoes skip it).
	ClientID string
	// BypassPermissions runs the command with the global admin role, which the permission
	// rules allow everything; rules that are not permissions still hold (nobody sends a
	// direct message to themselves, roomLeave needs a joined connection).
	BypassPermissions bool
}

// Exec runs a command as req.User. Without BypassPermissions the user has the roles of one
// of their connections on this instance, or none when they have no connection here.
func (a *API) Exec(ctx context.Context, req ExecRequest) (any, error) {
	if err := requireName("user", req.User); err != nil {
		return nil, err
	}
	c := Caller{Identity: a.s.identityOf(ctx, req.User)}
	if req.ClientID != "" {
		sess, ok := a.s.devices.Session(req.ClientID)
		if !ok || sess.Identity.User != req.User {
			return nil, wire.Errorf(wire.CodeNoUserOnline, "user %q has no connection %q on this instance", req.User, req.ClientID)
		}
		c.Identity, c.ClientID = sess.Identity, req.ClientID
	}
	if req.BypassPermissions && !c.Identity.IsAdmin() {
		c.Identity.Roles = append(slices.Clone(c.Identity.Roles), acl.RoleAdmin)
	}
	return a.s.Exec(ctx, c, req.Command, req.Args)
}

// RoomSpec describes a room to create.
type RoomSpec struct {
	// Name is the room name. Required.
	Name string `json:"room"`
	// Owner owns the room; empty means the system user.
	Owner string `json:"owner,omitempty"`
	// WhitelistOnly lets only whitelisted users (and the owner and admins) join.
	WhitelistOnly bool `json:"whitelistOnly,omitempty"`
	// Checker names the room's message checker; empty means text.
	Checker string `json:"checker,omitempty"`
}

// CreateRoom creates a room with roomCreate as its owner, without permission checks (rooms
// management and the per-user room limit do not apply). An existing room gives roomExists.
func (a *API) CreateRoom(ctx context.Context, r RoomSpec) error {
	owner := r.Owner
	if owner == "" {
		owner = a.system
	}
	args, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("create room %q: %w", r.Name, err)
	}
	_, err = a.Exec(ctx, ExecRequest{User: owner, Command: "roomCreate", Args: args, BypassPermissions: true})
	return err
}

// DeleteRoom deletes a room with roomDelete, without permission checks: its members get
// roomDeleted and lose their subscriptions.
func (a *API) DeleteRoom(ctx context.Context, room string) error {
	args, err := json.Marshal(roomArgs{Room: room})
	if err != nil {
		return fmt.Errorf("delete room %q: %w", room, err)
	}
	_, err = a.Exec(ctx, ExecRequest{User: a.system, Command: "roomDelete", Args: args, BypassPermissions: true})
	return err
}

// RoomInfo describes a room.
type RoomInfo struct {
	// Room is the name.
	Room string `json:"room"`
	// Owner is the owner.
	Owner string `json:"owner"`
	// Checker is the message checker.
	Checker string `json:"checker"`
	// WhitelistOnly is the room's mode.
	WhitelistOnly bool `json:"whitelistOnly"`
	// CreatedAt is the creation time, in milliseconds since the epoch.
	CreatedAt int64 `json:"createdAt"`
	// History describes the room's history.
	History rooms.HistoryInfo `json:"history"`
	// Users are the users joined to the room, on any instance.
	Users []string `json:"users"`
}

// Room describes a room; a missing room gives noRoom.
func (a *API) Room(ctx context.Context, room string) (RoomInfo, error) {
	if err := requireName("room", room); err != nil {
		return RoomInfo{}, err
	}
	r, err := a.s.rooms.Room(ctx, room)
	if err != nil {
		return RoomInfo{}, err
	}
	hist, err := a.s.rooms.HistoryInfo(ctx, room)
	if err != nil {
		return RoomInfo{}, err
	}
	users, err := a.s.rooms.Users(ctx, room)
	if err != nil {
		return RoomInfo{}, err
	}
	if users == nil {
		users = []string{}
	}
	return RoomInfo{
		Room: r.Name, Owner: r.Owner, Checker: r.Checker, WhitelistOnly: r.WhitelistOnly,
		CreatedAt: r.CreatedAt, History: hist, Users: users,
	}, nil
}

// RoomExists reports whether a room exists.
func (a *API) RoomExists(ctx context.Context, room string) (bool, error) {
	_, err := a.s.rooms.Room(ctx, room)
	switch {
	case err == nil:
		return true, nil
	case wire.CodeOf(err) == wire.CodeNoRoom:
		return false, nil
	}
	return false, err
}

// PostRoom posts payload to room as the system user, like a PUBLISH to rooms/{room}: the
// room's checker applies (binary rooms take any bytes), and the roomMessage hooks run with
// Call.Native set and no client id.
func (a *API) PostRoom(ctx context.Context, room string, payload []byte) (*rooms.Message, error) {
	return a.s.PostRoom(ctx, a.systemCaller(a.system), room, payload)
}

// PostRoomAs posts payload to room as author, without permission checks (see PostRoom).
func (a *API) PostRoomAs(ctx context.Context, author, room string, payload []byte) (*rooms.Message, error) {
	if err := requireName("author", author); err != nil {
		return nil, err
	}
	return a.s.PostRoom(ctx, a.systemCaller(author), room, payload)
}

// systemCaller is user with the admin role, for calls the system makes on its own.
func (a *API) systemCaller(user string) Caller {
	return Caller{Identity: acl.Identity{User: user, Roles: []string{acl.RoleAdmin}}}
}

// RoomEvent publishes ev on rooms/{room}/events, on every instance, to the users allowed in
// the room. ev needs a non-empty string "event" field; a missing room gives noRoom.
func (a *API) RoomEvent(ctx context.Context, room string, ev wire.Event) error {
	if name, _ := ev["event"].(string); name == "" {
		return wire.NewError(wire.CodeBadArgument, `argument "event": a non-empty event name is required`)
	}
	if _, err := a.s.rooms.Room(ctx, room); err != nil {
		return err
	}
	a.s.transport.RoomEvent(room, ev)
	return nil
}

// SendDirect sends message (a {"textMessage": ...} object) to user to's inbox from from, or
// from the system user when from is empty, without permission checks, through the
// directMessage hooks. The recipient needs a connection (noUserOnline otherwise). It returns
// the delivery timestamp, in milliseconds since the epoch.
func (a *API) SendDirect(ctx context.Context, from, to string, message json.RawMessage) (int64, error) {
	if from == "" {
		from = a.system
	}
	args, err := json.Marshal(struct {
		User    string          `json:"user"`
		Message json.RawMessage `json:"message"`
	}{to, message})
	if err != nil {
		return 0, wire.Errorf(wire.CodeBadArgument, `argument "message": %v`, err)
	}
	res, err := a.Exec(ctx, ExecRequest{User: from, Command: CommandDirectMessage, Args: args, BypassPermissions: true})
	if err != nil {
		return 0, err
	}
	if r, ok := res.(DirectResult); ok {
		return r.Timestamp, nil
	}
	return 0, nil
}

// ConnectionInfo is one connection of a user.
type ConnectionInfo struct {
	// ClientID is the MQTT client id.
	ClientID string `json:"clientId"`
	// Instance is the broker instance that holds the connection.
	Instance string `json:"instance"`
	// ConnectedAt is the connection time, in milliseconds since the epoch.
	ConnectedAt int64 `json:"connectedAt"`
}

// UserPresence is a user's presence with their connections.
type UserPresence struct {
	// User is the user.
	User string `json:"user"`
	// Online is true when the user has a connection.
	Online bool `json:"online"`
	// Connections are the user's connections on all instances, by client id.
	Connections []ConnectionInfo `json:"connections"`
}

// Presence returns the connections of user on all instances.
func (a *API) Presence(ctx context.Context, user string) (UserPresence, error) {
	if err := requireName("user", user); err != nil {
		return UserPresence{}, err
	}
	conns, err := a.s.devices.UserConnections(ctx, user)
	if err != nil {
		return UserPresence{}, err
	}
	p := UserPresence{User: user, Online: len(conns) > 0, Connections: make([]ConnectionInfo, 0, len(conns))}
	for _, c := range conns {
		p.Connections = append(p.Connections, ConnectionInfo{ClientID: c.ClientID, Instance: c.Instance, ConnectedAt: c.ConnectedAt})
	}
	slices.SortFunc(p.Connections, func(x, y ConnectionInfo) int { return strings.Compare(x.ClientID, y.ClientID) })
	return p, nil
}

// OnlineUsers returns the presence (presence/{user}) of every user online on any instance,
// sorted by user.
func (a *API) OnlineUsers(ctx context.Context) ([]wire.Presence, error) {
	all, err := a.s.devices.Presences(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]wire.Presence, 0, len(all))
	for _, p := range all {
		if p.Online {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(x, y wire.Presence) int { return strings.Compare(x.User, y.User) })
	return out, nil
}

// DisconnectUser ends every connection of user, on all instances (v5 clients get DISCONNECT
// 0x98, administrative action), and returns how many it asked to end. It does not wait for
// them to close; the user may connect again.
func (a *API) DisconnectUser(ctx context.Context, user string) (int, error) {
	if err := requireName("user", user); err != nil {
		return 0, err
	}
	conns, err := a.s.devices.UserConnections(ctx, user)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range conns {
		if a.s.transport.Disconnect(c.ClientID) {
			n++
		}
	}
	return n, nil
}
