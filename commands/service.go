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
	// Disconnect ends connection clientID; it reports false when there is no such connection.
	Disconnect(clientID string) bool
}

// Handler runs one command.
type Handler func(ctx context.Context, c Caller, args json.RawMessage) (any, error)

// Options configure a Service.
type Options struct {
	Rooms   *rooms.Service
	Devices *devices.Registry
	// Transport performs connection effects. It may be set after New with SetTransport,
	// before the first command runs.
	Transport Transport
	// Policy answers permission questions.
	Policy acl.Policy
	// RoomsManagement lets users create rooms with roomCreate.
	RoomsManagement bool
	// RoomDefaults holds the notification settings of new rooms.
	RoomDefaults store.Room
	// Now returns the current time; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service runs commands.
type Service struct {
	rooms     *rooms.Service
	devices   *devices.Registry
	transport Transport
	policy    acl.Policy
	manage    bool
	defaults  store.Room
	now       func() time.Time
	log       *slog.Logger
	handlers  map[string]Handler
}

// New returns a Service with every command of docs/protocol.md registered.
func New(opts Options) (*Service, error) {
	if opts.Rooms == nil || opts.Devices == nil {
		return nil, errors.New("commands: Options.Rooms and Options.Devices are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Service{
		rooms:     opts.Rooms,
		devices:   opts.Devices,
		transport: opts.Transport,
		policy:    opts.Policy,
		manage:    opts.RoomsManagement,
		defaults:  opts.RoomDefaults,
		now:       opts.Now,
		log:       opts.Logger,
	}
	s.handlers = map[string]Handler{
		"roomCreate":            s.roomCreate,
		"roomDelete":            s.roomDelete,
		"roomJoin":              s.roomJoin,
		"roomLeave":             s.roomLeave,
		"roomMessage":           s.roomMessage,
		"roomHistoryInfo":       s.roomHistoryInfo,
		"roomHistoryGet":        s.roomHistoryGet,
		"roomRecentHistory":     s.roomRecentHistory,
		"roomGetOwner":          s.roomGetOwner,
		"roomUserSeen":          s.roomUserSeen,
		"roomNotificationsInfo": s.roomNotificationsInfo,
		"roomGetAccessList":     s.roomGetAccessList,
		"directMessage":         s.directMessage,
		"listOwnSockets":        s.listOwnSockets,
		"systemMessage":         s.systemMessage,
		"disconnect":            s.disconnect,
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

// Exec runs command name with the JSON object args for c. Errors carry a wire code
// (wire.CodeOf); an unknown command gives noCommand.
func (s *Service) Exec(ctx context.Context, c Caller, name string, args json.RawMessage) (any, error) {
	h, ok := s.handlers[name]
	if !ok {
		return nil, wire.Errorf(wire.CodeNoCommand, "no command %q", name)
	}
	return h(ctx, c, args)
}

type roomArgs struct {
	Room string `json:"room"`
}

// room loads the room named by args after validating the name.
func (s *Service) room(ctx context.Context, name string) (store.Room, error) {
	if err := requireName("room", name); err != nil {
		return store.Room{}, err
	}
	return s.rooms.Room(ctx, name)
}

// roomFromArgs decodes arguments that name only a room, and loads it.
func (s *Service) roomFromArgs(ctx context.Context, args json.RawMessage) (store.Room, error) {
	var a roomArgs
	if err := decodeArgs(args, &a); err != nil {
		return store.Room{}, err
	}
	return s.room(ctx, a.Room)
}

// readableFromArgs decodes arguments that name only a room, and loads it if the caller may
// read it.
func (s *Service) readableFromArgs(ctx context.Context, c Caller, args json.RawMessage) (store.Room, error) {
	var a roomArgs
	if err := decodeArgs(args, &a); err != nil {
		return store.Room{}, err
	}
	return s.readableRoom(ctx, c, a.Room)
}

// readableRoom loads a room the caller may read: joined, owner or admin.
func (s *Service) readableRoom(ctx context.Context, c Caller, name string) (store.Room, error) {
	r, err := s.room(ctx, name)
	if err != nil {
		return r, err
	}
	if s.policy.CanManage(r, c.Identity) {
		return r, nil
	}
	joined, _, err := s.rooms.UserSeen(ctx, name, c.Identity.User)
	if err != nil {
		return r, err
	}
	if !s.policy.CanRead(r, c.Identity, joined) {
		return r, fmt.Errorf("read room %q: %w", name, acl.ErrNotJoined)
	}
	return r, nil
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
	r, err := s.roomFromArgs(ctx, args)
	if err != nil {
		return nil, err
	}
	if !s.policy.CanManage(r, c.Identity) {
		return nil, fmt.Errorf("delete room %q: %w", r.Name, acl.ErrNotAllowed)
	}
	if err := s.rooms.Delete(ctx, r.Name); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type connectionsResult struct {
	Connections int `json:"connections"`
}

func (s *Service) roomJoin(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	r, err := s.roomFromArgs(ctx, args)
	if err != nil {
		return nil, err
	}
	if !s.policy.CanJoin(r, c.Identity) {
		return nil, fmt.Errorf("join room %q: %w", r.Name, acl.ErrNotAllowed)
	}
	if c.ClientID == "" {
		return nil, wire.NewError(wire.CodeBadArgument, "roomJoin needs a calling connection")
	}
	j, err := s.transport.JoinRoom(ctx, c.Identity.User, c.ClientID, r.Name)
	if err != nil {
		return nil, err
	}
	return connectionsResult{j.Connections}, nil
}

func (s *Service) roomLeave(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	r, err := s.roomFromArgs(ctx, args)
	if err != nil {
		return nil, err
	}
	if c.ClientID == "" {
		return nil, wire.NewError(wire.CodeBadArgument, "roomLeave needs a calling connection")
	}
	j, err := s.transport.LeaveRoom(ctx, c.Identity.User, c.ClientID, r.Name)
	if err != nil {
		return nil, err
	}
	if !j.Changed {
		return nil, wire.Errorf(wire.CodeNotJoined, "connection %q is not joined to room %q", c.ClientID, r.Name)
	}
	return connectionsResult{j.Connections}, nil
}

// PostRoom posts payload to room as the caller: the native equivalent of roomMessage.
func (s *Service) PostRoom(ctx context.Context, c Caller, room string, payload []byte) (*rooms.Message, error) {
	r, err := s.room(ctx, room)
	if err != nil {
		return nil, err
	}
	if !s.policy.CanPost(r, c.Identity) {
		return nil, fmt.Errorf("post to room %q: %w", room, acl.ErrNotAllowed)
	}
	return s.rooms.Post(ctx, room, c.Identity.User, c.ClientID, payload)
}

func (s *Service) roomMessage(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
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
	if r, err := s.room(ctx, a.Room); err == nil && r.Checker == rooms.CheckerBinary {
		var b struct {
			Binary []byte `json:"binary"`
		}
		if err := json.Unmarshal(a.Message, &b); err != nil || b.Binary == nil {
			return nil, badArgument("message", `a binary room takes {"binary": "<base64>"}`)
		}
		payload = b.Binary
	}
	m, err := s.PostRoom(ctx, c, a.Room, payload)
	if err != nil {
		return nil, err
	}
	return struct {
		ID uint64 `json:"id"`
	}{m.ID}, nil
}

func (s *Service) roomHistoryInfo(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	r, err := s.readableFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	return s.rooms.HistoryInfo(ctx, r.Name)
}

func messagesJSON(msgs []*rooms.Message) []json.RawMessage {
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		out[i] = m.JSON()
	}
	return out
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
	if _, err := s.readableRoom(ctx, c, a.Room); err != nil {
		return nil, err
	}
	msgs, err := s.rooms.History(ctx, a.Room, a.ID, a.Limit)
	if err != nil {
		return nil, err
	}
	return messagesJSON(msgs), nil
}

func (s *Service) roomRecentHistory(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	r, err := s.readableFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	msgs, err := s.rooms.Recent(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	return messagesJSON(msgs), nil
}

func (s *Service) roomGetOwner(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	r, err := s.readableFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	return struct {
		Owner string `json:"owner"`
	}{r.Owner}, nil
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
	if _, err := s.readableRoom(ctx, c, a.Room); err != nil {
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
	r, err := s.readableFromArgs(ctx, c, args)
	if err != nil {
		return nil, err
	}
	return struct {
		EnableAccessListsUpdates bool `json:"enableAccessListsUpdates"`
		EnableUserlistUpdates    bool `json:"enableUserlistUpdates"`
	}{r.NotifyAccessLists, r.NotifyUserlist}, nil
}

func (s *Service) roomGetAccessList(ctx context.Context, c Caller, args json.RawMessage) (any, error) {
	var a struct {
		Room string `json:"room"`
		List string `json:"list"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if _, err := s.readableRoom(ctx, c, a.Room); err != nil {
		return nil, err
	}
	switch a.List {
	case "userlist":
		users, err := s.rooms.Users(ctx, a.Room)
		if err != nil {
			return nil, err
		}
		if users == nil {
			users = []string{}
		}
		return users, nil
	case "adminlist", "blacklist", "whitelist":
		// The access lists are managed by roomAddToList/roomRemoveFromList, which are not
		// implemented yet: every list is empty.
		return []string{}, nil
	}
	return nil, wire.Errorf(wire.CodeNoList, "no list %q", a.List)
}

// SendDirect sends a direct message from the caller to user to: the native equivalent of
// directMessage. The payload is checked like a text room message and delivered with author
// and timestamp; the caller's other connections get a directMessageEcho.
func (s *Service) SendDirect(ctx context.Context, c Caller, to string, payload []byte) (int64, error) {
	if err := requireName("user", to); err != nil {
		return 0, err
	}
	if !s.policy.CanDirect(c.Identity, to) {
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
	ts, err := s.SendDirect(ctx, c, a.User, a.Message)
	if err != nil {
		return nil, err
	}
	return struct {
		Timestamp int64 `json:"timestamp"`
	}{ts}, nil
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
