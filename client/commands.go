package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// This file has one method per broker command of docs/protocol.md. Each returns the
// command's error answer as an *Error (compare with errors.Is and the Err… sentinels).

// List names an access list.
type List string

// The access lists of rooms (all four) and of direct messages (blacklist and whitelist).
const (
	ListAdmins    List = "adminlist"
	ListBlacklist List = "blacklist"
	ListWhitelist List = "whitelist"
	// ListUsers is the read-only list of the users joined to a room.
	ListUsers List = "userlist"
)

// RoomOptions are the optional arguments of RoomCreate.
type RoomOptions struct {
	// WhitelistOnly creates the room in whitelist-only mode.
	WhitelistOnly bool `json:"whitelistOnly,omitempty"`
	// Checker names the room's message checker: "text" (default), "json", "binary" or a
	// custom one.
	Checker string `json:"checker,omitempty"`
}

type roomArg struct {
	Room string `json:"room"`
}

type listArg struct {
	Room  string   `json:"room,omitempty"`
	List  List     `json:"list"`
	Users []string `json:"users,omitempty"`
}

type modeResult struct {
	WhitelistOnly bool `json:"whitelistOnly"`
}

type connectionsResult struct {
	Connections int `json:"connections"`
}

// RoomCreate creates room, owned by the caller (roomCreate). opts may be nil.
func (c *Client) RoomCreate(ctx context.Context, room string, opts *RoomOptions) error {
	args := struct {
		Room string `json:"room"`
		RoomOptions
	}{Room: room}
	if opts != nil {
		args.RoomOptions = *opts
	}
	return c.RPC(ctx, "roomCreate", args, nil)
}

// RoomDelete deletes room; only its owner (or an admin) may (roomDelete).
func (c *Client) RoomDelete(ctx context.Context, room string) error {
	return c.RPC(ctx, "roomDelete", roomArg{room}, nil)
}

// RoomJoin joins this connection to room on the broker's side (roomJoin) and returns how many
// of the user's connections are joined. The client does not track such a join: messages
// arrive only for rooms joined with Join, which is what applications should use.
func (c *Client) RoomJoin(ctx context.Context, room string) (int, error) {
	var r connectionsResult
	err := c.RPC(ctx, "roomJoin", roomArg{room}, &r)
	return r.Connections, err
}

// RoomLeave leaves room on the broker's side (roomLeave) and returns how many of the user's
// connections stay joined. Prefer Leave for rooms joined with Join.
func (c *Client) RoomLeave(ctx context.Context, room string) (int, error) {
	var r connectionsResult
	err := c.RPC(ctx, "roomLeave", roomArg{room}, &r)
	return r.Connections, err
}

// RoomMessage posts message, a JSON value as the room's checker takes it (binary rooms take
// {"binary": "<base64>"}), through the roomMessage command and returns the message's id.
// Send posts as a plain PUBLISH instead.
func (c *Client) RoomMessage(ctx context.Context, room string, message json.RawMessage) (uint64, error) {
	var r struct {
		ID uint64 `json:"id"`
	}
	err := c.RPC(ctx, "roomMessage", struct {
		Room    string          `json:"room"`
		Message json.RawMessage `json:"message"`
	}{room, message}, &r)
	return r.ID, err
}

// HistoryInfo is the state of a room's history (roomHistoryInfo).
type HistoryInfo struct {
	// LastMessageID is the id of the newest message, 0 when there is none.
	LastMessageID uint64 `json:"lastMessageId"`
	// HistorySize is the number of messages stored.
	HistorySize int `json:"historySize"`
	// HistoryMaxSize is the size of the history ring.
	HistoryMaxSize int `json:"historyMaxSize"`
	// HistoryMaxGetMessages caps one history read.
	HistoryMaxGetMessages int `json:"historyMaxGetMessages"`
	// Epoch changes whenever the history's continuity is lost.
	Epoch string `json:"epoch"`
}

// RoomHistoryInfo returns the state of room's history (roomHistoryInfo).
func (c *Client) RoomHistoryInfo(ctx context.Context, room string) (HistoryInfo, error) {
	var r HistoryInfo
	err := c.RPC(ctx, "roomHistoryInfo", roomArg{room}, &r)
	return r, err
}

// RoomHistoryGet returns the messages of room with ids after afterID, ascending, at most limit
// (capped by the broker at historyMaxGetMessages) (roomHistoryGet).
func (c *Client) RoomHistoryGet(ctx context.Context, room string, afterID uint64, limit int) ([]Message, error) {
	var raw []json.RawMessage
	err := c.RPC(ctx, "roomHistoryGet", struct {
		Room  string `json:"room"`
		ID    uint64 `json:"id"`
		Limit int    `json:"limit"`
	}{room, afterID, limit}, &raw)
	if err != nil {
		return nil, err
	}
	return historyMessages(room, raw)
}

// RoomRecentHistory returns the last historyMaxGetMessages messages of room, ascending
// (roomRecentHistory).
func (c *Client) RoomRecentHistory(ctx context.Context, room string) ([]Message, error) {
	var raw []json.RawMessage
	if err := c.RPC(ctx, "roomRecentHistory", roomArg{room}, &raw); err != nil {
		return nil, err
	}
	return historyMessages(room, raw)
}

func historyMessages(room string, raw []json.RawMessage) ([]Message, error) {
	out := make([]Message, 0, len(raw))
	for _, r := range raw {
		m, err := historyMessage(room, r)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// RoomGetAccessList returns the users on one of room's lists (roomGetAccessList).
func (c *Client) RoomGetAccessList(ctx context.Context, room string, list List) ([]string, error) {
	var users []string
	err := c.RPC(ctx, "roomGetAccessList", listArg{Room: room, List: list}, &users)
	return users, err
}

// RoomAddToList adds users to one of room's lists (roomAddToList).
func (c *Client) RoomAddToList(ctx context.Context, room string, list List, users ...string) error {
	return c.RPC(ctx, "roomAddToList", listArg{Room: room, List: list, Users: users}, nil)
}

// RoomRemoveFromList removes users from one of room's lists (roomRemoveFromList).
func (c *Client) RoomRemoveFromList(ctx context.Context, room string, list List, users ...string) error {
	return c.RPC(ctx, "roomRemoveFromList", listArg{Room: room, List: list, Users: users}, nil)
}

// RoomGetWhitelistMode reports whether room is whitelist-only (roomGetWhitelistMode).
func (c *Client) RoomGetWhitelistMode(ctx context.Context, room string) (bool, error) {
	var r modeResult
	err := c.RPC(ctx, "roomGetWhitelistMode", roomArg{room}, &r)
	return r.WhitelistOnly, err
}

// RoomSetWhitelistMode makes room whitelist-only or not (roomSetWhitelistMode).
func (c *Client) RoomSetWhitelistMode(ctx context.Context, room string, whitelistOnly bool) error {
	return c.RPC(ctx, "roomSetWhitelistMode", struct {
		Room string `json:"room"`
		Mode bool   `json:"mode"`
	}{room, whitelistOnly}, nil)
}

// RoomGetOwner returns the owner of room (roomGetOwner).
func (c *Client) RoomGetOwner(ctx context.Context, room string) (string, error) {
	var r struct {
		Owner string `json:"owner"`
	}
	err := c.RPC(ctx, "roomGetOwner", roomArg{room}, &r)
	return r.Owner, err
}

// RoomList returns the names of the rooms this user may join, sorted (roomList; at most 1000).
func (c *Client) RoomList(ctx context.Context) ([]string, error) {
	var names []string
	err := c.RPC(ctx, "roomList", struct{}{}, &names)
	return names, err
}

// UserSeen tells whether a user is joined to a room and since or until when.
type UserSeen struct {
	// Joined is true while the user has a connection joined to the room.
	Joined bool
	// Timestamp is when the user joined or last left; zero when never seen.
	Timestamp time.Time
}

// RoomUserSeen returns whether user is joined to room and when they last joined or left
// (roomUserSeen).
func (c *Client) RoomUserSeen(ctx context.Context, room, user string) (UserSeen, error) {
	var r struct {
		Joined    bool  `json:"joined"`
		Timestamp int64 `json:"timestamp"`
	}
	err := c.RPC(ctx, "roomUserSeen", struct {
		Room string `json:"room"`
		User string `json:"user"`
	}{room, user}, &r)
	s := UserSeen{Joined: r.Joined}
	if r.Timestamp != 0 {
		s.Timestamp = time.UnixMilli(r.Timestamp)
	}
	return s, err
}

// NotificationsInfo says which notifications a room sends on rooms/{room}/events.
type NotificationsInfo struct {
	// EnableAccessListsUpdates: accessListChanged and modeChanged events.
	EnableAccessListsUpdates bool `json:"enableAccessListsUpdates"`
	// EnableUserlistUpdates: userJoined and userLeft events.
	EnableUserlistUpdates bool `json:"enableUserlistUpdates"`
}

// RoomNotificationsInfo returns room's notification settings (roomNotificationsInfo).
func (c *Client) RoomNotificationsInfo(ctx context.Context, room string) (NotificationsInfo, error) {
	var r NotificationsInfo
	err := c.RPC(ctx, "roomNotificationsInfo", roomArg{room}, &r)
	return r, err
}

// DirectMessage sends message, a JSON object as a text room takes it ({"textMessage": …}),
// to user's inbox (directMessage) and returns the broker's timestamp. SendDirect is the
// shorthand for text.
func (c *Client) DirectMessage(ctx context.Context, user string, message json.RawMessage) (time.Time, error) {
	var r struct {
		Timestamp int64 `json:"timestamp"`
	}
	err := c.RPC(ctx, "directMessage", struct {
		User    string          `json:"user"`
		Message json.RawMessage `json:"message"`
	}{user, message}, &r)
	if err != nil {
		return time.Time{}, fmt.Errorf("direct message to %q: %w", user, err)
	}
	return time.UnixMilli(r.Timestamp), nil
}

// DirectAddToList adds users to the caller's direct-message blacklist or whitelist
// (directAddToList).
func (c *Client) DirectAddToList(ctx context.Context, list List, users ...string) error {
	return c.RPC(ctx, "directAddToList", listArg{List: list, Users: users}, nil)
}

// DirectRemoveFromList removes users from the caller's direct-message blacklist or whitelist
// (directRemoveFromList).
func (c *Client) DirectRemoveFromList(ctx context.Context, list List, users ...string) error {
	return c.RPC(ctx, "directRemoveFromList", listArg{List: list, Users: users}, nil)
}

// DirectGetAccessList returns the users on the caller's direct-message blacklist or whitelist
// (directGetAccessList).
func (c *Client) DirectGetAccessList(ctx context.Context, list List) ([]string, error) {
	var users []string
	err := c.RPC(ctx, "directGetAccessList", listArg{List: list}, &users)
	return users, err
}

// DirectGetWhitelistMode reports whether the caller takes direct messages only from its
// whitelist (directGetWhitelistMode).
func (c *Client) DirectGetWhitelistMode(ctx context.Context) (bool, error) {
	var r modeResult
	err := c.RPC(ctx, "directGetWhitelistMode", nil, &r)
	return r.WhitelistOnly, err
}

// DirectSetWhitelistMode sets whether the caller takes direct messages only from its
// whitelist (directSetWhitelistMode).
func (c *Client) DirectSetWhitelistMode(ctx context.Context, whitelistOnly bool) error {
	return c.RPC(ctx, "directSetWhitelistMode", struct {
		Mode bool `json:"mode"`
	}{whitelistOnly}, nil)
}

// ListOwnSockets returns the caller's connections, across instances, each with the rooms it
// has joined (listOwnSockets).
func (c *Client) ListOwnSockets(ctx context.Context) (map[string][]string, error) {
	var r map[string][]string
	err := c.RPC(ctx, "listOwnSockets", nil, &r)
	return r, err
}

// SystemMessage sends data (any JSON value) to the caller's other connections, as a
// systemMessage event on users/{user}/events (systemMessage).
func (c *Client) SystemMessage(ctx context.Context, data any) error {
	return c.RPC(ctx, "systemMessage", struct {
		Data any `json:"data"`
	}{data}, nil)
}

// Disconnect ends one of the caller's own connections (disconnect); clientID "" means this
// one, which the client then reconnects.
func (c *Client) Disconnect(ctx context.Context, clientID string) error {
	return c.RPC(ctx, "disconnect", struct {
		ClientID string `json:"clientId,omitempty"`
	}{clientID}, nil)
}
