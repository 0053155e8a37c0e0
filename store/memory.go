package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
)

// Memory is a Store that keeps everything in the memory of one process. It suits a single
// broker instance and tests: its state is lost when the process ends, and every room created
// again after that gets a new epoch, so resuming clients see the history reset.
//
// Memory is safe for concurrent use. It ignores the contexts it is given, since every call
// completes at once, and it never returns ErrUnavailable.
//
// Lock order: rooms.mu, then a room's mu or members.mu (never both); conns.mu is never held
// together with another lock.
type Memory struct {
	rooms struct {
		mu     sync.RWMutex
		byName map[string]*memRoom
	}
	members struct {
		mu sync.Mutex
		// byRoom holds the membership of each room that has had any.
		byRoom map[string]*roomMembers
		// byClient maps a client id to the set of rooms it has joined.
		byClient map[string]map[string]struct{}
	}
	conns struct {
		mu       sync.Mutex
		byClient map[string]Connection
		// byUser maps a user to the set of its connections' client ids.
		byUser map[string]map[string]struct{}
		// byInstance maps an instance to the set of its connections' client ids.
		byInstance map[string]map[string]struct{}
		// version orders the counts of connections.
		version uint64
	}
	instances memoryInstances
	views     sync.Pool // of *[]Message: the slices ViewRange hands to its callers
	presence  memoryPresence
	routes    memoryRoutes
	retained  memoryRetained
	replies   memoryReplies
	feed      memoryFeed
	direct    struct {
		mu sync.Mutex
		// byUser holds the direct-message lists of the users that have any.
		byUser map[string]*accessState
	}
}

var _ Store = (*Memory)(nil)

// memRoom is one room: its settings, which never change but for the mode, its history and
// its access lists.
type memRoom struct {
	settings Room
	epoch    string

	mu      sync.Mutex
	lastID  uint64
	history ring

	acl struct {
		mu    sync.Mutex
		state accessState
	}
}

// roomMembers is the membership of one room. members.mu guards it.
type roomMembers struct {
	// clients maps each joined client id to its user.
	clients map[string]string
	// joined counts the joined connections of each user; users with none are absent.
	joined map[string]int
	// seen is the time of each user's last join or leave.
	seen map[string]int64
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	m := &Memory{}
	m.rooms.byName = make(map[string]*memRoom)
	m.members.byRoom = make(map[string]*roomMembers)
	m.members.byClient = make(map[string]map[string]struct{})
	m.conns.byClient = make(map[string]Connection)
	m.conns.byUser = make(map[string]map[string]struct{})
	m.conns.byInstance = make(map[string]map[string]struct{})
	m.instances.init()
	m.presence.init()
	m.routes.init()
	m.direct.byUser = make(map[string]*accessState)
	return m
}

// newEpoch returns 16 random hex characters.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24.
	return hex.EncodeToString(b[:])
}

// room returns the room called name, or nil.
func (m *Memory) room(name string) *memRoom {
	m.rooms.mu.RLock()
	defer m.rooms.mu.RUnlock()
	return m.rooms.byName[name]
}

func noRoom(op, name string) error {
	return fmt.Errorf("store: %s %q: %w", op, name, ErrNoRoom)
}

// CreateRoom creates a room with an empty history whose first message will get id 1, and a
// new random epoch, also when a room of that name existed before and was deleted. It returns
// ErrRoomExists when the name is taken.
func (m *Memory) CreateRoom(_ context.Context, room Room) error {
	m.rooms.mu.Lock()
	defer m.rooms.mu.Unlock()
	if _, ok := m.rooms.byName[room.Name]; ok {
		return fmt.Errorf("store: create room %q: %w", room.Name, ErrRoomExists)
	}
	r := &memRoom{settings: room, epoch: newEpoch()}
	r.acl.state.whitelistOnly = room.WhitelistOnly
	m.rooms.byName[room.Name] = r
	return nil
}

// Room returns a copy of the settings of the room called name, or ErrNoRoom.
func (m *Memory) Room(_ context.Context, name string) (Room, error) {
	r := m.room(name)
	if r == nil {
		return Room{}, noRoom("room", name)
	}
	return r.current(), nil
}

// current returns the room's settings with its current mode.
func (r *memRoom) current() Room {
	r.acl.mu.Lock()
	defer r.acl.mu.Unlock()
	s := r.settings
	s.WhitelistOnly = r.acl.state.whitelistOnly
	return s
}

// DeleteRoom deletes a room with its history, its membership and the last-seen times of its
// users, or returns ErrNoRoom. Afterwards ClientRooms no longer lists the room.
func (m *Memory) DeleteRoom(_ context.Context, name string) error {
	m.rooms.mu.Lock()
	defer m.rooms.mu.Unlock()
	if _, ok := m.rooms.byName[name]; !ok {
		return noRoom("delete room", name)
	}
	delete(m.rooms.byName, name)

	m.members.mu.Lock()
	defer m.members.mu.Unlock()
	rm := m.members.byRoom[name]
	if rm == nil {
		return nil
	}
	for clientID := range rm.clients {
		m.unindexClientLocked(clientID, name)
	}
	delete(m.members.byRoom, name)
	return nil
}

// CountOwnedRooms returns how many rooms owner owns.
func (m *Memory) CountOwnedRooms(_ context.Context, owner string) (int, error) {
	m.rooms.mu.RLock()
	defer m.rooms.mu.RUnlock()
	n := 0
	for _, r := range m.rooms.byName {
		if r.settings.Owner == owner {
			n++
		}
	}
	return n, nil
}

// RoomNames returns the names of all rooms, sorted.
func (m *Memory) RoomNames(context.Context) ([]string, error) {
	m.rooms.mu.RLock()
	names := make([]string, 0, len(m.rooms.byName))
	for name := range m.rooms.byName {
		names = append(names, name)
	}
	m.rooms.mu.RUnlock()
	slices.Sort(names)
	return names, nil
}

// Append gives m the room's next id, stores a copy of it and drops the oldest messages so that
// at most maxSize remain; a maxSize below 1 counts as 1. It returns a copy of the stored
// message, or ErrNoRoom.
// AppendBatch appends ms in order; see Append.
func (m *Memory) AppendBatch(ctx context.Context, room string, ms []Message, maxSize int) ([]Message, error) {
	out := make([]Message, 0, len(ms))
	for _, msg := range ms {
		stored, err := m.Append(ctx, room, msg, maxSize)
		if err != nil {
			return out, err
		}
		out = append(out, stored)
	}
	return out, nil
}

// Append gives msg the room's next id and stores it; see History.
func (m *Memory) Append(_ context.Context, room string, msg Message, maxSize int) (Message, error) {
	r := m.room(room)
	if r == nil {
		return Message{}, noRoom("append to", room)
	}
	maxSize = max(maxSize, 1)
	stored := msg
	stored.Payload = clonePayload(msg.Payload)

	r.mu.Lock()
	r.lastID++
	stored.ID = r.lastID
	r.history.push(stored, maxSize)
	r.mu.Unlock()

	m.feed.publish(room, stored, r.epoch)
	out := stored
	out.Payload = clonePayload(stored.Payload)
	return out, nil
}

// Range returns copies of the stored messages with an id greater than afterID, ascending, at
// most limit of them; when messages after afterID have left the history it starts at the
// oldest stored one. It returns an empty slice when limit is below 1, and ErrNoRoom for a
// room that does not exist.
func (m *Memory) Range(_ context.Context, room string, afterID uint64, limit int) ([]Message, error) {
	r := m.room(room)
	if r == nil {
		return nil, noRoom("range", room)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	off, n := r.rangeLocked(afterID, limit)
	return r.history.copyOut(off, n), nil
}

// ViewRange implements RangeViewer: view gets the messages Range would return, their payloads
// shared with the history (stored payloads are never changed, only dropped).
func (m *Memory) ViewRange(_ context.Context, room string, afterID uint64, limit int, view func([]Message) error) error {
	r := m.room(room)
	if r == nil {
		return noRoom("range", room)
	}
	buf, _ := m.views.Get().(*[]Message)
	if buf == nil {
		buf = new([]Message)
	}
	r.mu.Lock()
	off, n := r.rangeLocked(afterID, limit)
	msgs := r.history.appendTo((*buf)[:0], off, n)
	r.mu.Unlock()
	err := view(msgs)
	clear(msgs) // let the payloads go with the messages that leave the history
	*buf = msgs[:0]
	m.views.Put(buf)
	return err
}

// rangeLocked returns the position in the history of the messages with an id greater than
// afterID, at most limit of them: the offset from the oldest stored one, and how many. Lock
// r.mu must be held.
func (r *memRoom) rangeLocked(afterID uint64, limit int) (off, n int) {
	if limit < 1 || r.history.n == 0 || afterID >= r.lastID {
		return 0, 0
	}
	first := r.lastID - uint64(r.history.n) + 1
	start := max(afterID+1, first)
	return int(start - first), int(min(uint64(limit), r.lastID-start+1))
}

// Recent returns copies of the newest limit stored messages, ascending. It returns an empty
// slice when limit is below 1, and ErrNoRoom for a room that does not exist.
func (m *Memory) Recent(_ context.Context, room string, limit int) ([]Message, error) {
	r := m.room(room)
	if r == nil {
		return nil, noRoom("recent", room)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if limit < 1 {
		return []Message{}, nil
	}
	n := min(limit, r.history.n)
	return r.history.copyOut(r.history.n-n, n), nil
}

// HistoryInfo describes a room's history, or returns ErrNoRoom.
func (m *Memory) HistoryInfo(_ context.Context, room string) (HistoryInfo, error) {
	r := m.room(room)
	if r == nil {
		return HistoryInfo{}, noRoom("history info", room)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	info := HistoryInfo{LastID: r.lastID, Size: r.history.n, Epoch: r.epoch}
	if r.history.n > 0 {
		info.FirstID = r.lastID - uint64(r.history.n) + 1
	}
	return info, nil
}

// AddConnection records c and returns how many connections c.User now has. A connection with
// the same ClientID, of any session or user, is replaced and no longer counted for its user.
func (m *Memory) AddConnection(_ context.Context, c Connection) (UserCount, error) {
	m.conns.mu.Lock()
	defer m.conns.mu.Unlock()
	if old, ok := m.conns.byClient[c.ClientID]; ok {
		m.unindexConnLocked(old)
	}
	c.Will = bytes.Clone(c.Will)
	m.conns.byClient[c.ClientID] = c
	addToSet(m.conns.byUser, c.User, c.ClientID)
	addToSet(m.conns.byInstance, c.Instance, c.ClientID)
	return m.countLocked(c.User), nil
}

// RemoveConnection removes the connection of clientID if its Session is session, and returns
// whether it removed it and how many connections its user has left. When the connection of
// clientID has another session (it was taken over), nothing is removed and left counts the
// connections of the user of the stored connection; when there is no connection of clientID,
// it returns false and 0. Room memberships are left to the caller.
func (m *Memory) RemoveConnection(_ context.Context, clientID, session string) (bool, UserCount, error) {
	m.conns.mu.Lock()
	defer m.conns.mu.Unlock()
	old, ok := m.conns.byClient[clientID]
	if !ok {
		return false, UserCount{}, nil
	}
	if old.Session != session {
		return false, UserCount{N: len(m.conns.byUser[old.User])}, nil
	}
	delete(m.conns.byClient, clientID)
	m.unindexConnLocked(old)
	return true, m.countLocked(old.User), nil
}

// countLocked returns the count of user's connections with a new version. Lock conns.mu must
// be held.
func (m *Memory) countLocked(user string) UserCount {
	m.conns.version++
	return UserCount{N: len(m.conns.byUser[user]), Version: m.conns.version}
}

// unindexConnLocked removes c from the indexes. Lock conns.mu must be held.
func (m *Memory) unindexConnLocked(c Connection) {
	removeFromSet(m.conns.byUser, c.User, c.ClientID)
	removeFromSet(m.conns.byInstance, c.Instance, c.ClientID)
}

// addToSet adds v to the set sets[k], making it when needed.
func addToSet(sets map[string]map[string]struct{}, k, v string) {
	set := sets[k]
	if set == nil {
		set = make(map[string]struct{})
		sets[k] = set
	}
	set[v] = struct{}{}
}

// removeFromSet removes v from the set sets[k], and the set when it is left empty.
func removeFromSet(sets map[string]map[string]struct{}, k, v string) {
	set := sets[k]
	delete(set, v)
	if len(set) == 0 {
		delete(sets, k)
	}
}

// InstanceConnections returns the connections held by instance, sorted by ClientID.
func (m *Memory) InstanceConnections(_ context.Context, instance string) ([]Connection, error) {
	m.conns.mu.Lock()
	defer m.conns.mu.Unlock()
	return m.connectionsLocked(m.conns.byInstance[instance], true), nil
}

// connectionsLocked returns the connections of the client ids in ids, sorted by ClientID,
// with their wills or without. Lock conns.mu must be held.
func (m *Memory) connectionsLocked(ids map[string]struct{}, wills bool) []Connection {
	conns := make([]Connection, 0, len(ids))
	for id := range ids {
		c := m.conns.byClient[id]
		c.Will = nil
		if wills {
			c.Will = bytes.Clone(m.conns.byClient[id].Will)
		}
		conns = append(conns, c)
	}
	slices.SortFunc(conns, func(a, b Connection) int { return cmp.Compare(a.ClientID, b.ClientID) })
	return conns
}

// UserConnections returns a user's connections, sorted by ClientID; it is empty for a user
// without connections.
func (m *Memory) UserConnections(_ context.Context, user string) ([]Connection, error) {
	m.conns.mu.Lock()
	defer m.conns.mu.Unlock()
	return m.connectionsLocked(m.conns.byUser[user], false), nil
}

// Join records that clientID of user joined room, and at as the user's last-seen time there
// when that changed anything. It returns how many of the user's connections are joined to the
// room afterwards and whether this call changed anything (false when clientID was joined
// already). A client id joined as another user is moved to user. It returns ErrNoRoom for a
// missing room.
func (m *Memory) Join(_ context.Context, room, user, clientID string, at int64) (int, bool, error) {
	m.rooms.mu.RLock()
	defer m.rooms.mu.RUnlock()
	if _, ok := m.rooms.byName[room]; !ok {
		return 0, false, noRoom("join", room)
	}

	m.members.mu.Lock()
	defer m.members.mu.Unlock()
	rm := m.members.byRoom[room]
	if rm == nil {
		rm = &roomMembers{
			clients: make(map[string]string),
			joined:  make(map[string]int),
			seen:    make(map[string]int64),
		}
		m.members.byRoom[room] = rm
	}
	if old, ok := rm.clients[clientID]; ok {
		if old == user {
			return rm.joined[user], false, nil
		}
		rm.leaveLocked(old, at)
	}
	rm.clients[clientID] = user
	rm.joined[user]++
	rm.seen[user] = at
	rooms := m.members.byClient[clientID]
	if rooms == nil {
		rooms = make(map[string]struct{})
		m.members.byClient[clientID] = rooms
	}
	rooms[room] = struct{}{}
	return rm.joined[user], true, nil
}

// Leave records that clientID of user left room, and at as the user's last-seen time there
// when that changed anything. It returns how many of the user's connections are still joined
// and whether this call changed anything (false when clientID was not joined as user). For a
// room that does not exist it returns 0, false and no error, so that leaving a deleted room
// is harmless.
func (m *Memory) Leave(_ context.Context, room, user, clientID string, at int64) (int, bool, error) {
	m.rooms.mu.RLock()
	defer m.rooms.mu.RUnlock()
	if _, ok := m.rooms.byName[room]; !ok {
		return 0, false, nil
	}

	m.members.mu.Lock()
	defer m.members.mu.Unlock()
	rm := m.members.byRoom[room]
	if rm == nil {
		return 0, false, nil
	}
	if old, ok := rm.clients[clientID]; !ok || old != user {
		return rm.joined[user], false, nil
	}
	delete(rm.clients, clientID)
	rm.leaveLocked(user, at)
	m.unindexClientLocked(clientID, room)
	return rm.joined[user], true, nil
}

// leaveLocked counts one connection of user less and records at as its last-seen time. Lock
// members.mu must be held.
func (rm *roomMembers) leaveLocked(user string, at int64) {
	if rm.joined[user]--; rm.joined[user] <= 0 {
		delete(rm.joined, user)
	}
	rm.seen[user] = at
}

// unindexClientLocked removes room from the rooms of clientID. Lock members.mu must be held.
func (m *Memory) unindexClientLocked(clientID, room string) {
	rooms := m.members.byClient[clientID]
	delete(rooms, room)
	if len(rooms) == 0 {
		delete(m.members.byClient, clientID)
	}
}

// RoomUsers returns the users with at least one connection joined to room, sorted, or
// ErrNoRoom.
func (m *Memory) RoomUsers(_ context.Context, room string) ([]string, error) {
	m.rooms.mu.RLock()
	defer m.rooms.mu.RUnlock()
	if _, ok := m.rooms.byName[room]; !ok {
		return nil, noRoom("room users", room)
	}
	m.members.mu.Lock()
	var users []string
	if rm := m.members.byRoom[room]; rm != nil {
		users = make([]string, 0, len(rm.joined))
		for u := range rm.joined {
			users = append(users, u)
		}
	}
	m.members.mu.Unlock()
	if users == nil {
		return []string{}, nil
	}
	slices.Sort(users)
	return users, nil
}

// ClientRooms returns the rooms clientID has joined, sorted; it is empty for an unknown
// client id.
func (m *Memory) ClientRooms(_ context.Context, clientID string) ([]string, error) {
	m.members.mu.Lock()
	set := m.members.byClient[clientID]
	rooms := make([]string, 0, len(set))
	for r := range set {
		rooms = append(rooms, r)
	}
	m.members.mu.Unlock()
	slices.Sort(rooms)
	return rooms, nil
}

// UserSeen reports whether user has a connection joined to room, and the time of the user's
// last join or leave there (0 when never seen). It returns ErrNoRoom for a missing room.
func (m *Memory) UserSeen(_ context.Context, room, user string) (bool, int64, error) {
	m.rooms.mu.RLock()
	defer m.rooms.mu.RUnlock()
	if _, ok := m.rooms.byName[room]; !ok {
		return false, 0, noRoom("user seen", room)
	}
	m.members.mu.Lock()
	defer m.members.mu.Unlock()
	rm := m.members.byRoom[room]
	if rm == nil {
		return false, 0, nil
	}
	return rm.joined[user] > 0, rm.seen[user], nil
}

// Ping returns nil: the memory store is always available.
func (m *Memory) Ping(context.Context) error { return nil }

// Close does nothing and returns nil; it may be called any number of times. The store stays
// usable afterwards.
func (m *Memory) Close() error { return nil }

// clonePayload returns a copy of p that shares no memory with it; nil stays nil.
func clonePayload(p []byte) []byte {
	if p == nil {
		return nil
	}
	return append(make([]byte, 0, len(p)), p...)
}

// ring is a room's stored messages, oldest first, in a circular buffer that grows up to the
// history's maximum size. Their ids are contiguous, so a message is found from its id by
// arithmetic. Its owner's lock guards it.
type ring struct {
	buf  []Message
	head int // index of the oldest message in buf
	n    int // number of messages stored
}

// push adds m as the newest message and drops the oldest ones beyond maxSize (at least 1).
func (r *ring) push(m Message, maxSize int) {
	if r.n == len(r.buf) {
		if len(r.buf) < maxSize {
			r.resize(min(max(2*len(r.buf), 16), maxSize))
		} else {
			r.dropOldest()
		}
	}
	r.buf[(r.head+r.n)%len(r.buf)] = m
	r.n++
	for r.n > maxSize {
		r.dropOldest()
	}
	// Give memory back when the maximum size went down a lot.
	if len(r.buf) > 64 && len(r.buf) > 2*maxSize {
		r.resize(maxSize)
	}
}

// dropOldest removes the oldest message, releasing its payload.
func (r *ring) dropOldest() {
	r.buf[r.head] = Message{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

// resize moves the messages to a new buffer of size c >= r.n, oldest at index 0.
func (r *ring) resize(c int) {
	buf := make([]Message, c)
	k := copy(buf, r.buf[r.head:min(r.head+r.n, len(r.buf))])
	copy(buf[k:], r.buf[:r.n-k])
	r.buf, r.head = buf, 0
}

// appendTo appends n messages starting at the off-th oldest one to dst, sharing their
// payloads.
func (r *ring) appendTo(dst []Message, off, n int) []Message {
	if n == 0 {
		return dst
	}
	start := (r.head + off) % len(r.buf)
	first := r.buf[start:min(start+n, len(r.buf))]
	dst = append(dst, first...)
	return append(dst, r.buf[:n-len(first)]...)
}

// copyOut returns copies of n messages starting at the off-th oldest one. All their payloads
// share one new allocation, each capped at its own length so appending to one cannot write
// over the next.
func (r *ring) copyOut(off, n int) []Message {
	out := r.appendTo(make([]Message, 0, n), off, n)
	total := 0
	for i := range out {
		total += len(out[i].Payload)
	}
	data := make([]byte, 0, total)
	for i := range out {
		if p := out[i].Payload; p != nil {
			from := len(data)
			data = append(data, p...)
			out[i].Payload = data[from:len(data):len(data)]
		}
	}
	return out
}
