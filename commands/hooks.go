package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/wire"
)

// Names of the commands whose native MQTT equivalents go through the same hooks: a PUBLISH to
// rooms/{room} is roomMessage, a SUBSCRIBE to it roomJoin, an UNSUBSCRIBE roomLeave, and a
// PUBLISH to users/{user}/inbox directMessage.
const (
	CommandRoomMessage   = "roomMessage"
	CommandRoomJoin      = "roomJoin"
	CommandRoomLeave     = "roomLeave"
	CommandDirectMessage = "directMessage"
)

// Log keys of the hooks' logs.
const (
	logKeyHook   = "hook"
	logKeyClient = "client"
	logKeyRoom   = "room"
	logKeyError  = "error"
)

// AllCommands, given as the command of Hooks.Before or Hooks.After, registers a hook for every
// command.
const AllCommands = "*"

// Call is one run of a command, as its hooks see it.
type Call struct {
	// Caller runs the command. Caller.ClientID is empty for server-side calls (package API,
	// the admin HTTP API); Caller.Conn is nil then.
	Caller Caller
	// Command is the command name (for native calls, one of the Command* constants).
	Command string
	// Args are the JSON object arguments, as in docs/protocol.md. Before hooks may replace
	// them (SetArgs), except the room of a native roomJoin or roomLeave, which is the topic's.
	// Native calls carry the same arguments as their RPC twin: {"room"} for
	// roomJoin and roomLeave, {"room", "message"} for roomMessage and {"user", "message"}
	// for directMessage, where message is the published payload when it is JSON and
	// {"binary": "<base64>"} otherwise (always in binary rooms).
	Args json.RawMessage
	// Native is true when the call comes from a plain MQTT action (PUBLISH, SUBSCRIBE,
	// UNSUBSCRIBE, a will) rather than from $rpc/ or the server-side API.
	Native bool

	// wrapped is set when Args.message is the {"binary"} form of a native payload.
	wrapped bool
}

// Decode decodes the call's arguments into v: a typed view of Args.
func (c *Call) Decode(v any) error { return decodeArgs(c.Args, v) }

// SetArgs replaces the call's arguments with the JSON encoding of v, which must be an object.
func (c *Call) SetArgs(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("commands: encode arguments of %s: %w", c.Command, err)
	}
	c.Args = b
	return nil
}

// Outcome is what a command gave: its result or its error. After hooks may change both.
type Outcome struct {
	// Result is the result sent to the caller (encoded as JSON); nil when Err is set.
	Result any
	// Err is the command's error, nil on success. A *wire.Error (or an error wrapping one)
	// gives the client its code; any other error is internalError.
	Err error
	// Message is the room message a successful roomMessage posted (native or RPC); nil
	// otherwise.
	Message *rooms.Message
	// Skipped is true when a Before hook ended the call, so the command did not run.
	Skipped bool
}

// Merge adds fields to the result, which must encode as a JSON object (or be nil): the result
// becomes the merged object. It is how an After hook adds to a result.
func (o *Outcome) Merge(fields map[string]any) error {
	obj := map[string]json.RawMessage{}
	if o.Result != nil {
		b, err := json.Marshal(o.Result)
		if err != nil {
			return fmt.Errorf("commands: encode result: %w", err)
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return fmt.Errorf("commands: result is not a JSON object: %w", err)
		}
	}
	for k, v := range fields {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("commands: encode result field %q: %w", k, err)
		}
		obj[k] = b
	}
	o.Result = obj
	return nil
}

// BeforeHook runs before a command. It may change call.Args. Returning (nil, nil) lets the
// sequence go on; a non-nil error ends it with that error, and a non-nil result ends it with
// that result: later Before hooks and the command do not run (After hooks do).
//
// A native roomMessage or directMessage ended with a result is acknowledged but not posted; a
// native roomJoin cannot give a result to a SUBSCRIBE, so ending it early, with a result or an
// error, refuses the subscription. A native roomLeave cannot be refused (MQTT has already
// removed the subscription): what its Before hooks return is logged and ignored.
type BeforeHook func(ctx context.Context, call *Call) (result any, err error)

// AfterHook runs after a command, also when it failed or a Before hook ended it. It sees and
// may change out (replace or add to the result, replace the error). A returned error replaces
// the outcome's error. For native calls the change reaches the client only as an error (the
// PUBACK or SUBACK reason code); a posted message stays posted, a native join is undone.
type AfterHook func(ctx context.Context, call *Call, out *Outcome) error

// Connection is a client connection as the connection hooks see it. Connect hooks may attach
// data to it; every later hook of the connection (and Call.Caller.Conn) sees the same value.
type Connection struct {
	// Identity is the authenticated user.
	Identity acl.Identity
	// ClientID is the MQTT client identifier.
	ClientID string
	// Remote is the network address of the client.
	Remote string
	// Listener names the listener the client came through (tcp, tls, ws).
	Listener string
	// ProtocolVersion is 4 for MQTT 3.1.1, 5 for MQTT 5.
	ProtocolVersion byte

	mu   sync.Mutex
	data map[string]any
}

// Set attaches value to the connection under key.
func (c *Connection) Set(key string, value any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.data == nil {
		c.data = make(map[string]any)
	}
	c.data[key] = value
}

// Get returns the value attached under key.
func (c *Connection) Get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.data[key]
	return v, ok
}

// ConnectRefusal refuses a connection from a connect hook with an MQTT 5 CONNACK reason code
// (0x80 or above, e.g. 0x87 not authorized, 0x8A banned, 0x9F connection rate exceeded).
// MQTT 3.1.1 clients get the nearest 3.1.1 code.
type ConnectRefusal struct {
	// ReasonCode is the MQTT 5 CONNACK reason code.
	ReasonCode byte
	// Reason is a human readable reason, sent to v5 clients as the reason string.
	Reason string
}

// Error implements error.
func (e *ConnectRefusal) Error() string {
	return fmt.Sprintf("connection refused (0x%02x): %s", e.ReasonCode, e.Reason)
}

// ConnectHook runs when a client has authenticated, before the CONNACK. It may attach data to
// conn. An error refuses the connection: a *ConnectRefusal with its reason code, a
// *wire.Error notAllowed with 0x87 (not authorized), any other error or a panic with 0x80
// (unspecified error; 3.1.1: 0x03 server unavailable).
type ConnectHook func(ctx context.Context, conn *Connection) error

// DisconnectHook runs when a connection whose session was established ends; cause is nil for
// a DISCONNECT from the client.
type DisconnectHook func(ctx context.Context, conn *Connection, cause error) error

// RoomHook runs when a connection joined a room (SUBSCRIBE, roomJoin, a resumed session) or
// left it (UNSUBSCRIBE, roomLeave, disconnect).
type RoomHook func(ctx context.Context, conn *Connection, room string) error

// Hooks holds the command and connection hooks of a broker. The zero value has none; a nil
// *Hooks has none either. Register hooks before the broker starts; registering later is safe
// but a command already running does not see the new hook.
type Hooks struct {
	mu         sync.RWMutex
	before     map[string][]BeforeHook
	after      map[string][]AfterHook
	connect    []ConnectHook
	disconnect []DisconnectHook
	join       []RoomHook
	leave      []RoomHook
	log        *slog.Logger
}

// NewHooks returns an empty set of hooks.
func NewHooks() *Hooks { return &Hooks{} }

// Before registers f to run before command (AllCommands: every command). Before hooks run in
// registration order, those for AllCommands before those of the command.
func (h *Hooks) Before(command string, f BeforeHook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.before == nil {
		h.before = make(map[string][]BeforeHook)
	}
	h.before[command] = append(h.before[command], f)
}

// After registers f to run after command (AllCommands: every command), in registration order,
// those of the command before those for AllCommands.
func (h *Hooks) After(command string, f AfterHook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.after == nil {
		h.after = make(map[string][]AfterHook)
	}
	h.after[command] = append(h.after[command], f)
}

// OnConnect registers f to run when a client connects (see ConnectHook).
func (h *Hooks) OnConnect(f ConnectHook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connect = append(h.connect, f)
}

// OnDisconnect registers f to run when a connection ends.
func (h *Hooks) OnDisconnect(f DisconnectHook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.disconnect = append(h.disconnect, f)
}

// OnJoin registers f to run when a connection joined a room.
func (h *Hooks) OnJoin(f RoomHook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.join = append(h.join, f)
}

// OnLeave registers f to run when a connection left a room.
func (h *Hooks) OnLeave(f RoomHook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.leave = append(h.leave, f)
}

// setLogger sets where hook failures of the notification hooks are logged.
func (h *Hooks) setLogger(log *slog.Logger) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = log
}

func (h *Hooks) logger() *slog.Logger {
	if h.log != nil {
		return h.log
	}
	return slog.Default()
}

// chains returns the Before hooks of command (those for every command first) and its After
// hooks (those for every command last).
func (h *Hooks) chains(command string) ([]BeforeHook, []AfterHook) {
	if h == nil {
		return nil, nil
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	var before []BeforeHook
	var after []AfterHook
	if len(h.before[AllCommands]) > 0 || len(h.before[command]) > 0 {
		before = append(append(before, h.before[AllCommands]...), h.before[command]...)
	}
	if len(h.after[AllCommands]) > 0 || len(h.after[command]) > 0 {
		after = append(append(after, h.after[command]...), h.after[AllCommands]...)
	}
	return before, after
}

// active reports whether command has Before or After hooks.
func (h *Hooks) active(command string) bool {
	before, after := h.chains(command)
	return len(before) > 0 || len(after) > 0
}

// errHookPanic marks the error of a hook that panicked.
var errHookPanic = errors.New("hook panicked")

// safely runs f, turning a panic into an error wrapping errHookPanic.
func safely(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errHookPanic, p)
		}
	}()
	return f()
}

// run runs call through the Before hooks, the command (exec) and the After hooks. Errors of
// hooks that carry no wire code are wrapped with the hook's place, so the caller's one log
// line says which hook failed; clients see internalError.
func (h *Hooks) run(ctx context.Context, call *Call, exec func(context.Context, *Call) (any, error)) Outcome {
	before, after := h.chains(call.Command)
	var out Outcome
	for i, f := range before {
		var res any
		err := safely(func() error {
			var err error
			res, err = f(ctx, call)
			return err
		})
		if err != nil {
			out = Outcome{Err: wrapHookErr(fmt.Sprintf("before hook %d of %s", i+1, call.Command), err), Skipped: true}
			break
		}
		if res != nil {
			out = Outcome{Result: res, Skipped: true}
			break
		}
	}
	if !out.Skipped {
		out.Result, out.Err = exec(ctx, call)
		if out.Err != nil {
			out.Result = nil
		} else if m, ok := out.Result.(*MessageResult); ok {
			out.Message = m.Message
		}
	}
	for i, f := range after {
		if err := safely(func() error { return f(ctx, call, &out) }); err != nil {
			out.Result, out.Err = nil, wrapHookErr(fmt.Sprintf("after hook %d of %s", i+1, call.Command), err)
		}
	}
	return out
}

// wrapHookErr names the hook in an error without a wire code; wire errors pass unchanged, so
// the client gets their code and message.
func wrapHookErr(what string, err error) error {
	var we *wire.Error
	if errors.As(err, &we) {
		return err
	}
	return fmt.Errorf("commands: %s: %w", what, err)
}

// Connect runs the connect hooks for conn, in order, and returns the first error (see
// ConnectHook). Package hooks calls it.
func (h *Hooks) Connect(ctx context.Context, conn *Connection) error {
	if h == nil {
		return nil
	}
	h.mu.RLock()
	hooks := h.connect
	h.mu.RUnlock()
	for i, f := range hooks {
		if err := safely(func() error { return f(ctx, conn) }); err != nil {
			return wrapHookErr(fmt.Sprintf("connect hook %d", i+1), err)
		}
	}
	return nil
}

// Disconnected runs the disconnect hooks for conn; their errors and panics are logged.
func (h *Hooks) Disconnected(ctx context.Context, conn *Connection, cause error) {
	if h == nil || conn == nil {
		return
	}
	h.mu.RLock()
	hooks := h.disconnect
	h.mu.RUnlock()
	for i, f := range hooks {
		what := fmt.Sprintf("disconnect hook %d", i+1)
		if err := safely(func() error { return f(ctx, conn, cause) }); err != nil {
			h.logger().Error("hook failed", logKeyHook, what, logKeyClient, conn.ClientID, logKeyError, err)
		}
	}
}

// Joined runs the join hooks; their errors and panics are logged.
func (h *Hooks) Joined(ctx context.Context, conn *Connection, room string) {
	h.roomHooks(ctx, conn, room, "join", func(h *Hooks) []RoomHook { return h.join })
}

// Left runs the leave hooks; their errors and panics are logged.
func (h *Hooks) Left(ctx context.Context, conn *Connection, room string) {
	h.roomHooks(ctx, conn, room, "leave", func(h *Hooks) []RoomHook { return h.leave })
}

func (h *Hooks) roomHooks(ctx context.Context, conn *Connection, room, kind string, pick func(*Hooks) []RoomHook) {
	if h == nil || conn == nil {
		return
	}
	h.mu.RLock()
	hooks := pick(h)
	h.mu.RUnlock()
	for i, f := range hooks {
		what := fmt.Sprintf("%s hook %d", kind, i+1)
		if err := safely(func() error { return f(ctx, conn, room) }); err != nil {
			h.logger().Error("hook failed", logKeyHook, what, logKeyClient, conn.ClientID, logKeyRoom, room, logKeyError, err)
		}
	}
}

// MessageResult is the result of roomMessage: the id, and for hooks the posted message.
type MessageResult struct {
	// ID is the message id.
	ID uint64 `json:"id"`
	// Message is the posted message (not sent to the caller).
	Message *rooms.Message `json:"-"`
}

// errRefusedByHook is the error of a native join that a Before hook ended with a result.
var errRefusedByHook = wire.NewError(wire.CodeNotAllowed, "refused by a hook")

// NativeRoom runs the hooks of a native roomJoin or roomLeave (command) of room around do,
// which joins or leaves the calling connection; package hooks calls it for SUBSCRIBE and
// UNSUBSCRIBE. The room is the topic's: hooks that change Args do not change it. It returns
// the error the join is refused with. A leave always happens: an early end of its Before
// hooks is logged and the leave done anyway.
func (s *Service) NativeRoom(ctx context.Context, c Caller, command, room string, do func(context.Context) (rooms.Joined, error)) error {
	exec := func(ctx context.Context, _ *Call) (any, error) {
		j, err := do(ctx)
		if err != nil {
			return nil, err
		}
		return connectionsResult{j.Connections}, nil
	}
	if !s.hooks.active(command) {
		_, err := exec(ctx, nil)
		return err
	}
	args, err := json.Marshal(roomArgs{Room: room})
	if err != nil {
		return fmt.Errorf("%s %q: %w", command, room, err)
	}
	out := s.hooks.run(ctx, &Call{Caller: c, Command: command, Args: args, Native: true}, exec)
	switch {
	case !out.Skipped:
		return out.Err
	case command == CommandRoomLeave:
		s.log.Warn("a Before hook cannot refuse a native leave; leaving", logKeyClient, c.ClientID, logKeyRoom, room, logKeyError, out.Err)
		_, err := exec(ctx, nil)
		return err
	case out.Err != nil:
		return out.Err
	}
	return errRefusedByHook
}
