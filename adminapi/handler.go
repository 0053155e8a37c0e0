package adminapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/wire"
)

// Defaults of Options.
const (
	// DefaultMaxBodyBytes caps a request body.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultTimeout bounds one request's work.
	DefaultTimeout = 10 * time.Second
)

// Log keys.
const (
	logKeyMethod = "method"
	logKeyPath   = "path"
	logKeyError  = "error"
)

// Options configure the Handler.
type Options struct {
	// API is the broker's server-side API. Required.
	API *commands.API
	// Token is the bearer token every request must carry. Required: without a token there
	// is no API.
	Token string
	// MaxBodyBytes caps request bodies (DefaultMaxBodyBytes when 0); a larger body gets 413.
	MaxBodyBytes int64
	// Timeout bounds the work of one request (DefaultTimeout when 0).
	Timeout time.Duration
	// Logger receives the internal errors; nil means slog.Default(). Tokens are never logged.
	Logger *slog.Logger
	// Bridges returns the state of the broker's bridges, for GET /api/bridges; nil means
	// none.
	Bridges func() any
}

// Handler serves the admin HTTP API. Mount it on "/api/".
type Handler struct {
	api         *commands.API
	token       [sha256.Size]byte
	maxBody     int64
	timeout     time.Duration
	log         *slog.Logger
	mux         *http.ServeMux
	bridgeState func() any
}

// New returns the admin API handler.
func New(opts Options) (*Handler, error) {
	if opts.API == nil {
		return nil, errors.New("adminapi: Options.API is required")
	}
	if opts.Token == "" {
		return nil, errors.New("adminapi: Options.Token is required")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Handler{
		api:         opts.API,
		token:       sha256.Sum256([]byte(opts.Token)),
		maxBody:     opts.MaxBodyBytes,
		timeout:     opts.Timeout,
		bridgeState: opts.Bridges,
		log:         opts.Logger,
		mux:         http.NewServeMux(),
	}
	h.mux.HandleFunc("POST /api/exec", h.exec)
	h.mux.HandleFunc("POST /api/rooms", h.createRoom)
	h.mux.HandleFunc("GET /api/rooms", h.roomNames)
	h.mux.HandleFunc("GET /api/rooms/{room}", h.room)
	h.mux.HandleFunc("DELETE /api/rooms/{room}", h.deleteRoom)
	h.mux.HandleFunc("POST /api/rooms/{room}/messages", h.postRoom)
	h.mux.HandleFunc("POST /api/rooms/{room}/events", h.roomEvent)
	h.mux.HandleFunc("GET /api/bridges", h.bridges)
	h.mux.HandleFunc("GET /api/users", h.onlineUsers)
	h.mux.HandleFunc("GET /api/users/{user}", h.presence)
	h.mux.HandleFunc("DELETE /api/users/{user}/connections", h.disconnect)
	h.mux.HandleFunc("POST /api/users/{user}/messages", h.sendDirect)
	h.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, wire.Errorf(CodeNotFound, "no endpoint %s %s", r.Method, r.URL.Path))
	})
	return h, nil
}

// ServeHTTP implements http.Handler: it checks the bearer token, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="roomq admin API"`)
		h.fail(w, r, wire.NewError(CodeUnauthorized, "a valid admin token is required: Authorization: Bearer <token>"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	h.mux.ServeHTTP(w, r)
}

// authorized compares the request's bearer token with the configured one in constant time
// (hashes of equal length, so the token's length does not leak either).
func (h *Handler) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], h.token[:]) == 1
}

func (h *Handler) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), h.timeout)
}

// decode reads the JSON object body into v; unknown fields are errors.
func (h *Handler) decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return wire.Errorf(CodeTooLarge, "request body over %d bytes", h.maxBody)
		}
		if errors.Is(err, io.EOF) {
			return wire.NewError(wire.CodeBadArgument, "request body: a JSON object is required")
		}
		return wire.Errorf(wire.CodeBadArgument, "request body: %v", err)
	}
	if dec.More() {
		return wire.NewError(wire.CodeBadArgument, "request body: one JSON object expected")
	}
	return nil
}

// reply writes v as JSON with status.
func (h *Handler) reply(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		h.log.Error("admin API: encode response", logKeyError, err)
		status, body = http.StatusInternalServerError, []byte(`{"error":{"code":"internalError","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// fail writes err as {"error": {"code", "message"}} with the status of its code. Errors
// without a wire code are logged, once, and answered internalError.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := wire.AsError(err)
	if e.Code == wire.CodeInternalError {
		h.log.Error("admin API request failed", logKeyMethod, r.Method, logKeyPath, r.URL.Path, logKeyError, err)
	}
	h.reply(w, statusOf(e.Code), struct {
		Error *wire.Error `json:"error"`
	}{e})
}

// execRequest is the body of POST /api/exec.
type execRequest struct {
	User              string          `json:"user"`
	Command           string          `json:"command"`
	Args              json.RawMessage `json:"args"`
	ClientID          string          `json:"clientId"`
	BypassPermissions bool            `json:"bypassPermissions"`
}

func (h *Handler) exec(w http.ResponseWriter, r *http.Request) {
	var req execRequest
	if err := h.decode(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.Command == "" {
		h.fail(w, r, wire.NewError(wire.CodeBadArgument, `"command" is required`))
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	res, err := h.api.Exec(ctx, commands.ExecRequest{
		User: req.User, Command: req.Command, Args: req.Args, ClientID: req.ClientID,
		BypassPermissions: req.BypassPermissions,
	})
	if err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	if res == nil {
		res = struct{}{}
	}
	h.reply(w, http.StatusOK, struct {
		Result any `json:"result"`
	}{res})
}

// timeoutAware turns an error of a request that ran out of time into timeout.
func timeoutAware(ctx context.Context, err error) error {
	if wire.CodeOf(err) == wire.CodeInternalError && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return wire.Errorf(wire.CodeTimeout, "the request took too long: %v", err)
	}
	return err
}

func (h *Handler) createRoom(w http.ResponseWriter, r *http.Request) {
	var spec commands.RoomSpec
	if err := h.decode(r, &spec); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	if err := h.api.CreateRoom(ctx, spec); err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	info, err := h.api.Room(ctx, spec.Name)
	if err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	h.reply(w, http.StatusCreated, info)
}

// bridges reports the state of the broker's bridges.
func (h *Handler) bridges(w http.ResponseWriter, _ *http.Request) {
	var state any = []struct{}{}
	if h.bridgeState != nil {
		state = h.bridgeState()
	}
	h.reply(w, http.StatusOK, struct {
		Bridges any `json:"bridges"`
	}{state})
}

// roomNames lists every room's name, sorted.
func (h *Handler) roomNames(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.ctx(r)
	defer cancel()
	names, err := h.api.RoomNames(ctx)
	if err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	h.reply(w, http.StatusOK, struct {
		Rooms []string `json:"rooms"`
	}{names})
}

func (h *Handler) room(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.ctx(r)
	defer cancel()
	info, err := h.api.Room(ctx, r.PathValue("room"))
	if err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	h.reply(w, http.StatusOK, info)
}

func (h *Handler) deleteRoom(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.ctx(r)
	defer cancel()
	if err := h.api.DeleteRoom(ctx, r.PathValue("room")); err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	h.reply(w, http.StatusOK, struct{}{})
}

// postRoom posts {"message": ..., "author"?: ...} as the author (default the system user)
// with roomMessage, without permission checks.
func (h *Handler) postRoom(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Message json.RawMessage `json:"message"`
		Author  string          `json:"author"`
	}
	if err := h.decode(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	author := req.Author
	if author == "" {
		author = h.api.SystemUser()
	}
	args, err := json.Marshal(struct {
		Room    string          `json:"room"`
		Message json.RawMessage `json:"message,omitempty"`
	}{r.PathValue("room"), req.Message})
	if err != nil {
		h.fail(w, r, fmt.Errorf("encode arguments: %w", err))
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	res, err := h.api.Exec(ctx, commands.ExecRequest{User: author, Command: commands.CommandRoomMessage, Args: args, BypassPermissions: true})
	if err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	h.reply(w, http.StatusOK, res)
}

func (h *Handler) roomEvent(w http.ResponseWriter, r *http.Request) {
	var ev wire.Event
	if err := h.decode(r, &ev); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	if err := h.api.RoomEvent(ctx, r.PathValue("room"), ev); err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	h.reply(w, http.StatusOK, struct{}{})
}

func (h *Handler) onlineUsers(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.ctx(r)
	defer cancel()
	users, err := h.api.OnlineUsers(ctx)
	if err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	h.reply(w, http.StatusOK, struct {
		Users []wire.Presence `json:"users"`
	}{users})
}

func (h *Handler) presence(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.ctx(r)
	defer cancel()
	p, err := h.api.Presence(ctx, r.PathValue("user"))
	if err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	h.reply(w, http.StatusOK, p)
}

func (h *Handler) disconnect(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.ctx(r)
	defer cancel()
	n, err := h.api.DisconnectUser(ctx, r.PathValue("user"))
	if err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	h.reply(w, http.StatusOK, struct {
		Disconnected int `json:"disconnected"`
	}{n})
}

// sendDirect pushes {"message": ..., "from"?: ...} to the user's inbox.
func (h *Handler) sendDirect(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Message json.RawMessage `json:"message"`
		From    string          `json:"from"`
	}
	if err := h.decode(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if len(req.Message) == 0 {
		h.fail(w, r, wire.NewError(wire.CodeBadArgument, `"message" is required`))
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	ts, err := h.api.SendDirect(ctx, req.From, r.PathValue("user"), req.Message)
	if err != nil {
		h.fail(w, r, timeoutAware(ctx, err))
		return
	}
	h.reply(w, http.StatusOK, struct {
		Timestamp int64 `json:"timestamp"`
	}{ts})
}
