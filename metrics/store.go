package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/roomq/roomq/store"
)

// IsDomainError reports whether err is an answer of the store rather than a failure: one of
// store.ErrNoRoom, store.ErrRoomExists, store.ErrListLimit and store.ErrNoList.
func IsDomainError(err error) bool {
	return errors.Is(err, store.ErrNoRoom) || errors.Is(err, store.ErrRoomExists) ||
		errors.Is(err, store.ErrListLimit) || errors.Is(err, store.ErrNoList)
}

// InstrumentStore returns st with every call timed in roomq_store_duration_seconds and its
// failures counted in roomq_store_errors_total, labelled with the method's name. With nil m
// it returns st itself. The calls of Subscribe* are timed, not the deliveries they start.
func InstrumentStore(st store.Store, m *Metrics) store.Store {
	if m == nil || st == nil {
		return st
	}
	return &instrumented{st: st, m: m}
}

// instrumented is the store.Store decorator of InstrumentStore.
type instrumented struct {
	st store.Store
	m  *Metrics
}

var (
	_ store.Store       = (*instrumented)(nil)
	_ store.RangeViewer = (*instrumented)(nil)
)

// done records a call of op that started at start.
func (s *instrumented) done(op string, start time.Time, err error) {
	s.m.StoreCall(op, time.Since(start), err)
}

// SubscribeRoom implements store.Feed.
func (s *instrumented) SubscribeRoom(ctx context.Context, room string, deliver func(m store.Message, epoch string)) (func(), error) {
	start := time.Now()
	cancel, err := s.st.SubscribeRoom(ctx, room, deliver)
	s.done("SubscribeRoom", start, err)
	return cancel, err
}

// Broadcast implements store.Broadcaster.
func (s *instrumented) Broadcast(ctx context.Context, payload []byte) error {
	start := time.Now()
	err := s.st.Broadcast(ctx, payload)
	s.done("Broadcast", start, err)
	return err
}

// SubscribeBroadcast implements store.Broadcaster.
func (s *instrumented) SubscribeBroadcast(ctx context.Context, deliver func(payload []byte)) (func(), error) {
	start := time.Now()
	cancel, err := s.st.SubscribeBroadcast(ctx, deliver)
	s.done("SubscribeBroadcast", start, err)
	return cancel, err
}

// CreateRoom implements store.Rooms.
func (s *instrumented) CreateRoom(ctx context.Context, room store.Room) error {
	start := time.Now()
	err := s.st.CreateRoom(ctx, room)
	s.done("CreateRoom", start, err)
	return err
}

// Room implements store.Rooms.
func (s *instrumented) Room(ctx context.Context, name string) (store.Room, error) {
	start := time.Now()
	r, err := s.st.Room(ctx, name)
	s.done("Room", start, err)
	return r, err
}

// DeleteRoom implements store.Rooms.
func (s *instrumented) DeleteRoom(ctx context.Context, name string) error {
	start := time.Now()
	err := s.st.DeleteRoom(ctx, name)
	s.done("DeleteRoom", start, err)
	return err
}

// RoomNames implements store.Rooms.
func (s *instrumented) RoomNames(ctx context.Context) ([]string, error) {
	start := time.Now()
	names, err := s.st.RoomNames(ctx)
	s.done("RoomNames", start, err)
	return names, err
}

// CountOwnedRooms implements store.Rooms.
func (s *instrumented) CountOwnedRooms(ctx context.Context, owner string) (int, error) {
	start := time.Now()
	n, err := s.st.CountOwnedRooms(ctx, owner)
	s.done("CountOwnedRooms", start, err)
	return n, err
}

// Append implements store.History.
func (s *instrumented) Append(ctx context.Context, room string, msg store.Message, maxSize int) (store.Message, error) {
	start := time.Now()
	out, err := s.st.Append(ctx, room, msg, maxSize)
	s.done("Append", start, err)
	return out, err
}

// AppendBatch implements store.History.
func (s *instrumented) AppendBatch(ctx context.Context, room string, msgs []store.Message, maxSize int) ([]store.Message, error) {
	start := time.Now()
	out, err := s.st.AppendBatch(ctx, room, msgs, maxSize)
	s.done("AppendBatch", start, err)
	return out, err
}

// Range implements store.History.
func (s *instrumented) Range(ctx context.Context, room string, afterID uint64, limit int) ([]store.Message, error) {
	start := time.Now()
	msgs, err := s.st.Range(ctx, room, afterID, limit)
	s.done("Range", start, err)
	return msgs, err
}

// ViewRange implements store.RangeViewer with the store's ViewRange, or with its Range when
// it has none; either is counted as Range.
func (s *instrumented) ViewRange(ctx context.Context, room string, afterID uint64, limit int, view func([]store.Message) error) error {
	v, ok := s.st.(store.RangeViewer)
	if !ok {
		msgs, err := s.Range(ctx, room, afterID, limit)
		if err != nil {
			return err
		}
		return view(msgs)
	}
	// The store's time and errors exclude view's: it runs once the store is done.
	start := time.Now()
	var d time.Duration
	viewed := false
	err := v.ViewRange(ctx, room, afterID, limit, func(msgs []store.Message) error {
		d, viewed = time.Since(start), true
		return view(msgs)
	})
	if viewed {
		s.m.StoreCall("Range", d, nil)
	} else {
		s.done("Range", start, err)
	}
	return err
}

// Recent implements store.History.
func (s *instrumented) Recent(ctx context.Context, room string, limit int) ([]store.Message, error) {
	start := time.Now()
	msgs, err := s.st.Recent(ctx, room, limit)
	s.done("Recent", start, err)
	return msgs, err
}

// HistoryInfo implements store.History.
func (s *instrumented) HistoryInfo(ctx context.Context, room string) (store.HistoryInfo, error) {
	start := time.Now()
	info, err := s.st.HistoryInfo(ctx, room)
	s.done("HistoryInfo", start, err)
	return info, err
}

// AddConnection implements store.Connections.
func (s *instrumented) AddConnection(ctx context.Context, c store.Connection) (store.UserCount, error) {
	start := time.Now()
	n, err := s.st.AddConnection(ctx, c)
	s.done("AddConnection", start, err)
	return n, err
}

// RemoveConnection implements store.Connections.
func (s *instrumented) RemoveConnection(ctx context.Context, clientID, session string) (bool, store.UserCount, error) {
	start := time.Now()
	removed, left, err := s.st.RemoveConnection(ctx, clientID, session)
	s.done("RemoveConnection", start, err)
	return removed, left, err
}

// UserConnections implements store.Connections.
func (s *instrumented) UserConnections(ctx context.Context, user string) ([]store.Connection, error) {
	start := time.Now()
	conns, err := s.st.UserConnections(ctx, user)
	s.done("UserConnections", start, err)
	return conns, err
}

// Heartbeat implements store.Instances.
func (s *instrumented) Heartbeat(ctx context.Context, instance string, ttl time.Duration) (bool, error) {
	start := time.Now()
	alive, err := s.st.Heartbeat(ctx, instance, ttl)
	s.done("Heartbeat", start, err)
	return alive, err
}

// ClaimDeadInstance implements store.Instances.
func (s *instrumented) ClaimDeadInstance(ctx context.Context, lease time.Duration) (string, error) {
	start := time.Now()
	instance, err := s.st.ClaimDeadInstance(ctx, lease)
	s.done("ClaimDeadInstance", start, err)
	return instance, err
}

// ReleaseDeadInstance implements store.Instances.
func (s *instrumented) ReleaseDeadInstance(ctx context.Context, instance string) error {
	start := time.Now()
	err := s.st.ReleaseDeadInstance(ctx, instance)
	s.done("ReleaseDeadInstance", start, err)
	return err
}

// RemoveInstance implements store.Instances.
func (s *instrumented) RemoveInstance(ctx context.Context, instance string) error {
	start := time.Now()
	err := s.st.RemoveInstance(ctx, instance)
	s.done("RemoveInstance", start, err)
	return err
}

// InstanceConnections implements store.Instances.
func (s *instrumented) InstanceConnections(ctx context.Context, instance string) ([]store.Connection, error) {
	start := time.Now()
	conns, err := s.st.InstanceConnections(ctx, instance)
	s.done("InstanceConnections", start, err)
	return conns, err
}

// SetPresence implements store.Presences.
func (s *instrumented) SetPresence(ctx context.Context, p store.Presence) error {
	start := time.Now()
	err := s.st.SetPresence(ctx, p)
	s.done("SetPresence", start, err)
	return err
}

// Presences implements store.Presences.
func (s *instrumented) Presences(ctx context.Context) ([]store.Presence, error) {
	start := time.Now()
	ps, err := s.st.Presences(ctx)
	s.done("Presences", start, err)
	return ps, err
}

// SetRetained implements store.Retained.
func (s *instrumented) SetRetained(ctx context.Context, topic string, message []byte) (uint64, error) {
	start := time.Now()
	version, err := s.st.SetRetained(ctx, topic, message)
	s.done("SetRetained", start, err)
	return version, err
}

// RetainedMessages implements store.Retained.
func (s *instrumented) RetainedMessages(ctx context.Context) ([]store.RetainedMessage, error) {
	start := time.Now()
	msgs, err := s.st.RetainedMessages(ctx)
	s.done("RetainedMessages", start, err)
	return msgs, err
}

// GrantReply implements store.Replies.
func (s *instrumented) GrantReply(ctx context.Context, clientID, topic string, ttl time.Duration) error {
	start := time.Now()
	err := s.st.GrantReply(ctx, clientID, topic, ttl)
	s.done("GrantReply", start, err)
	return err
}

// UseReply implements store.Replies.
func (s *instrumented) UseReply(ctx context.Context, clientID, topic string) (bool, error) {
	start := time.Now()
	ok, err := s.st.UseReply(ctx, clientID, topic)
	s.done("UseReply", start, err)
	return ok, err
}

// AddRoute implements store.Routes.
func (s *instrumented) AddRoute(ctx context.Context, instance, filter string) error {
	start := time.Now()
	err := s.st.AddRoute(ctx, instance, filter)
	s.done("AddRoute", start, err)
	return err
}

// SetRoutes implements store.Routes.
func (s *instrumented) SetRoutes(ctx context.Context, instance string, filters []string) error {
	start := time.Now()
	err := s.st.SetRoutes(ctx, instance, filters)
	s.done("SetRoutes", start, err)
	return err
}

// Routes implements store.Routes.
func (s *instrumented) Routes(ctx context.Context) (map[string][]string, error) {
	start := time.Now()
	routes, err := s.st.Routes(ctx)
	s.done("Routes", start, err)
	return routes, err
}

// SendTo implements store.Routes.
func (s *instrumented) SendTo(ctx context.Context, instance string, payload []byte) error {
	start := time.Now()
	err := s.st.SendTo(ctx, instance, payload)
	s.done("SendTo", start, err)
	return err
}

// SubscribeMailbox implements store.Routes.
func (s *instrumented) SubscribeMailbox(ctx context.Context, instance string, deliver func(payload []byte)) (func(), error) {
	start := time.Now()
	cancel, err := s.st.SubscribeMailbox(ctx, instance, deliver)
	s.done("SubscribeMailbox", start, err)
	return cancel, err
}

// Join implements store.Members.
func (s *instrumented) Join(ctx context.Context, room, user, clientID string, at int64) (int, bool, error) {
	start := time.Now()
	count, changed, err := s.st.Join(ctx, room, user, clientID, at)
	s.done("Join", start, err)
	return count, changed, err
}

// Leave implements store.Members.
func (s *instrumented) Leave(ctx context.Context, room, user, clientID string, at int64) (int, bool, error) {
	start := time.Now()
	count, changed, err := s.st.Leave(ctx, room, user, clientID, at)
	s.done("Leave", start, err)
	return count, changed, err
}

// RoomUsers implements store.Members.
func (s *instrumented) RoomUsers(ctx context.Context, room string) ([]string, error) {
	start := time.Now()
	users, err := s.st.RoomUsers(ctx, room)
	s.done("RoomUsers", start, err)
	return users, err
}

// ClientRooms implements store.Members.
func (s *instrumented) ClientRooms(ctx context.Context, clientID string) ([]string, error) {
	start := time.Now()
	rooms, err := s.st.ClientRooms(ctx, clientID)
	s.done("ClientRooms", start, err)
	return rooms, err
}

// UserSeen implements store.Members.
func (s *instrumented) UserSeen(ctx context.Context, room, user string) (bool, int64, error) {
	start := time.Now()
	joined, at, err := s.st.UserSeen(ctx, room, user)
	s.done("UserSeen", start, err)
	return joined, at, err
}

// ListAdd implements store.AccessLists.
func (s *instrumented) ListAdd(ctx context.Context, scope store.Scope, list string, users []string, limit int) ([]string, error) {
	start := time.Now()
	added, err := s.st.ListAdd(ctx, scope, list, users, limit)
	s.done("ListAdd", start, err)
	return added, err
}

// ListRemove implements store.AccessLists.
func (s *instrumented) ListRemove(ctx context.Context, scope store.Scope, list string, users []string) ([]string, error) {
	start := time.Now()
	removed, err := s.st.ListRemove(ctx, scope, list, users)
	s.done("ListRemove", start, err)
	return removed, err
}

// ListUsers implements store.AccessLists.
func (s *instrumented) ListUsers(ctx context.Context, scope store.Scope, list string) ([]string, error) {
	start := time.Now()
	users, err := s.st.ListUsers(ctx, scope, list)
	s.done("ListUsers", start, err)
	return users, err
}

// SetWhitelistOnly implements store.AccessLists.
func (s *instrumented) SetWhitelistOnly(ctx context.Context, scope store.Scope, on bool) (bool, error) {
	start := time.Now()
	changed, err := s.st.SetWhitelistOnly(ctx, scope, on)
	s.done("SetWhitelistOnly", start, err)
	return changed, err
}

// Access implements store.AccessLists.
func (s *instrumented) Access(ctx context.Context, scope store.Scope, user string) (store.Room, bool, store.Listed, error) {
	start := time.Now()
	room, whitelistOnly, listed, err := s.st.Access(ctx, scope, user)
	s.done("Access", start, err)
	return room, whitelistOnly, listed, err
}

// Ping implements store.Store.
func (s *instrumented) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.st.Ping(ctx)
	s.done("Ping", start, err)
	return err
}

// Close implements store.Store.
func (s *instrumented) Close() error {
	start := time.Now()
	err := s.st.Close()
	s.done("Close", start, err)
	return err
}
