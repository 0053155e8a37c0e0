package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/devices"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// Caller is who runs a command.
type Caller struct {
	// Identity is the authenticated user.
	Identity acl.Identity
	// ClientID is the calling connection, empty for server-side calls.
	ClientID string
	// Conn is the calling connection as the connection hooks saw it, with the data they
	// attached; nil for server-side calls and wills.
	Conn *Connection
}

// Transport performs the effects of commands on connections. Package hooks implements it.
type Transport interface {
	// JoinRoom subscribes connection clientID of user to room, as a SUBSCRIBE would.
	JoinRoom(ctx context.Context, user, clientID, room string) (rooms.Joined, error)
	// LeaveRoom unsubscribes connection clientID of user from room.
	LeaveRoom(ctx context.Context, user, clientID, room string) (rooms.Joined, error)
	// DeliverDirect publishes payload on users/{to}/inbox.
	DeliverDirect(to string, payload []byte)
	// UserEventExcept publishes ev on users/{user}/events to every connection but except.
	UserEventExcept(user, except string, ev wire.Event)
	// RoomEvent publishes ev on rooms/{room}/events.
	RoomEvent(room string, ev wire.Event)
	// Disconnect ends connection clientID; it reports false when there is no such connection.
	Disconnect(clientID string) bool
}

// DefaultListLimit caps the users on one access list when Options.ListLimit is not set.
const DefaultListLimit = 10000

// Handler runs one command.
type Handler func(ctx context.Context, c Caller, args json.RawMessage) (any, error)

// Options configure a Service.
type Options struct {
	Rooms   *rooms.Service
	Devices *devices.Registry
	// Transport performs connection effects. It may be set after New with SetTransport,
	// before the first command runs.
	Transport Transport
	// Lists keeps the access lists and modes of rooms and users. Required.
	Lists store.AccessLists
	// Policy answers permission questions.
	Policy acl.Policy
	// ListLimit caps the users on one access list (default 10000).
	ListLimit int
	// MaxRoomsPerUser caps the rooms one user may own through roomCreate; 0 means no limit.
	// Global admins are not limited.
	MaxRoomsPerUser int
	// RoomsManagement lets users create rooms with roomCreate.
	RoomsManagement bool
	// RoomDefaults holds the notification settings of new rooms.
	RoomDefaults store.Room
	// Hooks run around every command and its native equivalents; nil means none.
	Hooks *Hooks
	// Now returns the current time; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service runs commands.
type Service struct {
	rooms     *rooms.Service
	devices   *devices.Registry
	transport Transport
	lists     store.AccessLists
	policy    acl.Policy
	listLimit int
	maxRooms  int
	manage    bool
	defaults  store.Room
	now       func() time.Time
	log       *slog.Logger
	hooks     *Hooks
	handlers  map[string]Handler
}

// New returns a Service with every command of docs/protocol.md registered.
func New(opts Options) (*Service, error) {
	if opts.Rooms == nil || opts.Devices == nil || opts.Lists == nil {
		return nil, errors.New("commands: Options.Rooms, Options.Devices and Options.Lists are required")
	}
	if opts.ListLimit <= 0 {
		opts.ListLimit = DefaultListLimit
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Hooks == nil {
		opts.Hooks = NewHooks()
	}
	opts.Hooks.setLogger(opts.Logger)
	s := &Service{
		rooms:     opts.Rooms,
		devices:   opts.Devices,
		transport: opts.Transport,
		lists:     opts.Lists,
		policy:    opts.Policy,
		listLimit: opts.ListLimit,
		maxRooms:  opts.MaxRoomsPerUser,
		manage:    opts.RoomsManagement,
		defaults:  opts.RoomDefaults,
		now:       opts.Now,
		log:       opts.Logger,
		hooks:     opts.Hooks,
	}
	s.handlers = map[string]Handler{
		"roomCreate":             s.roomCreate,
		"roomDelete":             s.roomDelete,
		"roomJoin":               s.roomJoin,
		"roomLeave":              s.roomLeave,
		"roomMessage":            s.roomMessage,
		"roomHistoryInfo":        s.roomHistoryInfo,
		"roomHistoryGet":         s.roomHistoryGet,
		"roomRecentHistory":      s.roomRecentHistory,
		"roomGetOwner":           s.roomGetOwner,
		"roomUserSeen":           s.roomUserSeen,
		"roomNotificationsInfo":  s.roomNotificationsInfo,
		"roomGetAccessList":      s.roomGetAccessList,
		"roomAddToList":          s.roomAddToList,
		"roomRemoveFromList":     s.roomRemoveFromList,
		"roomGetWhitelistMode":   s.roomGetWhitelistMode,
		"roomSetWhitelistMode":   s.roomSetWhitelistMode,
		"directAddToList":        s.directAddToList,
		"directRemoveFromList":   s.directRemoveFromList,
		"directGetAccessList":    s.directGetAccessList,
		"directGetWhitelistMode": s.directGetWhitelistMode,
		"directSetWhitelistMode": s.directSetWhitelistMode,
		"directMessage":          s.directMessage,
		"listOwnSockets":         s.listOwnSockets,
		"systemMessage":          s.systemMessage,
		"disconnect":             s.disconnect,
	}
	return s, nil
}

// SetTransport sets the transport; call it once, before the first command runs.
func (s *Service) SetTransport(t Transport) { s.transport = t }

// Names returns the names of the registered commands, sorted.
func (s *Service) Names() []string {
	names := make([]string, 0, len(s.handlers))
	for n := range s.handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Hooks returns the service's hooks (Options.Hooks, or the empty set it made).
func (s *Service) Hooks() *Hooks { return s.hooks }

// Exec runs command name with the JSON object args for c, through the command's Before and
// After hooks. Errors carry a wire code (wire.CodeOf); an unknown command gives noCommand
// without running any hook.
func (s *Service) Exec(ctx context.Context, c Caller, name string, args json.RawMessage) (any, error) {
	h, ok := s.handlers[name]
	if !ok {
		return nil, wire.Errorf(wire.CodeNoCommand, "no command %q", name)
	}
	if !s.hooks.active(name) {
		return h(ctx, c, args)
	}
	out := s.hooks.run(ctx, &Call{Caller: c, Command: name, Args: args}, func(ctx context.Context, call *Call) (any, error) {
		return h(ctx, call.Caller, call.Args)
	})
	return out.Result, out.Err
}

// SendDirect sends a direct message from the caller to user to: the native equivalent of
// directMessage, through its hooks. The payload is checked like a text room message and
// delivered with author and timestamp; the caller's other connections get a
// directMessageEcho. It returns 0 and no error when a Before hook ended the call with a
// result.
func (s *Service) SendDirect(ctx context.Context, c Caller, to string, payload []byte) (int64, error) {
	if !s.hooks.active(CommandDirectMessage) {
		return s.sendDirect(ctx, c, to, payload)
	}
	if !json.Valid(payload) {
		if _, err := rooms.CheckText(payload); err != nil {
			return 0, fmt.Errorf("direct message to %q: %w", to, err)
		}
	}
	args, err := json.Marshal(struct {
		User    string          `json:"user"`
		Message json.RawMessage `json:"message"`
	}{to, payload})
	if err != nil {
		return 0, fmt.Errorf("direct message to %q: %w", to, err)
	}
	call := &Call{Caller: c, Command: CommandDirectMessage, Args: args, Native: true}
	out := s.hooks.run(ctx, call, func(ctx context.Context, call *Call) (any, error) {
		return s.directMessage(ctx, call.Caller, call.Args)
	})
	if out.Err != nil {
		return 0, out.Err
	}
	if r, ok := out.Result.(DirectResult); ok {
		return r.Timestamp, nil
	}
	return 0, nil
}

// DirectResult is the result of directMessage.
type DirectResult struct {
	// Timestamp is when the broker delivered the message, in milliseconds since the epoch.
	Timestamp int64 `json:"timestamp"`
}

// sendDirect is SendDirect without hooks.
func (s *Service) sendDirect(ctx context.Context, c Caller, to string, payload []byte) (int64, error) {
	if err := requireName("user", to); err != nil {
		return 0, err
	}
	access, err := acl.LoadDirectAccess(ctx, s.lists, to, c.Identity.User)
	if err != nil {
		return 0, err
	}
	if !s.policy.CanDirect(access, c.Identity) {
		return 0, fmt.Errorf("direct message to %q: %w", to, acl.ErrNotAllowed)
	}
	content, err := rooms.CheckText(payload)
	if err != nil {
		return 0, fmt.Errorf("direct message to %q: %w", to, err)
	}
	conns, err := s.devices.UserConnections(ctx, to)
	if err != nil {
		return 0, err
	}
	if len(conns) == 0 {
		return 0, wire.Errorf(wire.CodeNoUserOnline, "user %q has no connection", to)
	}
	ts := s.now().UnixMilli()
	delivered := rooms.EnrichDirect(content, c.Identity.User, ts)
	s.transport.DeliverDirect(to, delivered)
	s.transport.UserEventExcept(c.Identity.User, c.ClientID, wire.NewEvent(wire.EventDirectMessageEcho, map[string]any{
		"to": to, "message": json.RawMessage(delivered),
	}))
	return ts, nil
}

func (s *Service) directMessage(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	var a struct {
		User    string          `json:"user"`
		Message json.RawMessage `json:"message"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := requireValue("message", a.Message); err != nil {
		return nil, err
	}
	ts, err := s.sendDirect(ctx, c, a.User, a.Message)
	if err != nil {
		return nil, err
	}
	return DirectResult{ts}, nil
}

func (s *Service) listOwnSockets(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &struct{}{}); err != nil {
		return nil, err
	}
	conns, err := s.devices.UserConnections(ctx, c.Identity.User)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(conns))
	for _, conn := range conns {
		rs, err := s.rooms.ClientRooms(ctx, conn.ClientID)
		if err != nil {
			return nil, err
		}
		if rs == nil {
			rs = []string{}
		}
		out[conn.ClientID] = rs
	}
	return out, nil
}

func (s *Service) systemMessage(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	var a struct {
		Data json.RawMessage `json:"data"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := requireValue("data", a.Data); err != nil {
		return nil, err
	}
	s.transport.UserEventExcept(c.Identity.User, c.ClientID, wire.NewEvent(wire.EventSystemMessage, map[string]any{
		"data": a.Data,
	}))
	return struct{}{}, nil
}

func (s *Service) disconnect(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	var a struct {
		ClientID string `json:"clientId"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	target := a.ClientID
	if target == "" {
		target = c.ClientID
	}
	conns, err := s.devices.UserConnections(ctx, c.Identity.User)
	if err != nil {
		return nil, err
	}
	for _, conn := range conns {
		if conn.ClientID == target {
			if !s.transport.Disconnect(target) {
				return nil, wire.Errorf(wire.CodeNoUserOnline, "connection %q is on another instance", target)
			}
			return struct{}{}, nil
		}
	}
	return nil, wire.Errorf(wire.CodeBadArgument, "argument \"clientId\": %q is not one of your connections", target)
}
