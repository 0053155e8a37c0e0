package store

import (
	"context"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Membership in Redis: a room's members hash maps each joined client id to its user, its
// joined hash counts the joined connections of each user, and its seen hash holds the time of
// each user's last join or leave; a script changes them together. The rooms of a client id
// are indexed in the set {P:client:ID}:rooms, in another slot:
//
//   - Join adds the room to it before the script runs, so that a crash leaves at worst an
//     entry of a room that the client id has not joined, which ClientRooms skips and Leave
//     removes; and again after the script when that changed the membership, in case a
//     concurrent Leave of the same client id removed it meanwhile.
//   - Whoever removes the room from it (Leave, a Join of a missing room, DeleteRoom) then
//     checks the membership again and adds the room back when the client id joined meanwhile.
//
// So when calls stop, a client id's index holds every room it has joined, and at worst
// rooms it has not, which are harmless.

// joinScript joins a client id to a room. KEYS: the room's settings, members, joined and seen
// hashes. ARGV: user, client id, time. Returns {} when the room does not exist, else
// {count, changed (0 or 1)}.
var joinScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return {}
end
local user, cid, at = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HGET', KEYS[2], cid)
if old == user then
	return {tonumber(redis.call('HGET', KEYS[3], user) or '0'), 0}
end
if old then
	if redis.call('HINCRBY', KEYS[3], old, -1) <= 0 then
		redis.call('HDEL', KEYS[3], old)
	end
	redis.call('HSET', KEYS[4], old, at)
end
redis.call('HSET', KEYS[2], cid, user)
local n = redis.call('HINCRBY', KEYS[3], user, 1)
redis.call('HSET', KEYS[4], user, at)
return {n, 1}
`)

// leaveScript removes a client id of a user from a room. KEYS: the room's settings, members,
// joined and seen hashes. ARGV: user, client id, time. Returns {count, changed (0 or 1),
// whether the client id is still joined (as another user; 0 or 1)}.
var leaveScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return {0, 0, 0}
end
local user, cid, at = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HGET', KEYS[2], cid)
if old ~= user then
	local joined = 0
	if old then
		joined = 1
	end
	return {tonumber(redis.call('HGET', KEYS[3], user) or '0'), 0, joined}
end
redis.call('HDEL', KEYS[2], cid)
local n = redis.call('HINCRBY', KEYS[3], user, -1)
if n <= 0 then
	redis.call('HDEL', KEYS[3], user)
	n = 0
end
redis.call('HSET', KEYS[4], user, at)
return {n, 1, 0}
`)

// roomUsersScript returns {} when the room does not exist, else {1, users...}. KEYS: the
// room's settings and joined hashes.
var roomUsersScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return {}
end
local users = redis.call('HKEYS', KEYS[2])
table.insert(users, 1, 1)
return users
`)

// userSeenScript returns {} when the room does not exist, else {joined connections, last
// seen}. KEYS: the room's settings, joined and seen hashes. ARGV: user.
var userSeenScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return {}
end
return {tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0'),
	tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')}
`)

// memberKeys returns the keys that joinScript and leaveScript take.
func (r *Redis) memberKeys(room string) []string {
	return []string{
		r.roomKey(room, roomSuffixes[rkRoom]),
		r.roomKey(room, roomSuffixes[rkMembers]),
		r.roomKey(room, roomSuffixes[rkJoined]),
		r.roomKey(room, roomSuffixes[rkSeen]),
	}
}

// Join records that clientID of user joined room, and at as the user's last-seen time there
// when that changed anything. It returns how many of the user's connections are joined to the
// room afterwards and whether this call changed anything (false when clientID was joined
// already). A client id joined as another user is moved to user. It returns ErrNoRoom for a
// missing room.
//
// The membership changes in one script; the client id's index of rooms is kept in separate
// steps around it.
func (r *Redis) Join(ctx context.Context, room, user, clientID string, at int64) (int, bool, error) {
	const op = "join"
	rooms := r.clientKey(clientID, "rooms")
	if err := r.client.SAdd(ctx, rooms, room).Err(); err != nil {
		return 0, false, redisError(op, err)
	}
	v, err := r.run(ctx, op, joinScript, r.memberKeys(room), user, clientID, at)
	if err != nil {
		return 0, false, err
	}
	if len(v) == 0 {
		if err := r.unindexClient(ctx, op, room, clientID); err != nil {
			return 0, false, err
		}
		return 0, false, noRoom(op, room)
	}
	changed := intAt(v, 1) == 1
	if changed {
		if err := r.client.SAdd(ctx, rooms, room).Err(); err != nil {
			return 0, false, redisError(op, err)
		}
	}
	return int(intAt(v, 0)), changed, nil
}

// Leave records that clientID of user left room, and at as the user's last-seen time there
// when that changed anything. It returns how many of the user's connections are still joined
// and whether this call changed anything (false when clientID was not joined as user). For a
// room that does not exist it returns 0, false and no error, so that leaving a deleted room
// is harmless.
//
// The membership changes in one script; then room leaves the client id's index of rooms,
// unless the client id is still joined as another user.
func (r *Redis) Leave(ctx context.Context, room, user, clientID string, at int64) (int, bool, error) {
	const op = "leave"
	v, err := r.run(ctx, op, leaveScript, r.memberKeys(room), user, clientID, at)
	if err != nil {
		return 0, false, err
	}
	if intAt(v, 2) == 0 {
		if err := r.unindexClient(ctx, op, room, clientID); err != nil {
			return 0, false, err
		}
	}
	return int(intAt(v, 0)), intAt(v, 1) == 1, nil
}

// unindexClient removes room from the rooms of clientID, then adds it back if clientID has
// joined room meanwhile.
func (r *Redis) unindexClient(ctx context.Context, op, room, clientID string) error {
	rooms := r.clientKey(clientID, "rooms")
	if err := r.client.SRem(ctx, rooms, room).Err(); err != nil {
		return redisError(op, err)
	}
	joined, err := r.client.HExists(ctx, r.roomKey(room, roomSuffixes[rkMembers]), clientID).Result()
	if err != nil {
		return redisError(op, err)
	}
	if joined {
		if err := r.client.SAdd(ctx, rooms, room).Err(); err != nil {
			return redisError(op, err)
		}
	}
	return nil
}

// RoomUsers returns the users with at least one connection joined to room, sorted, or
// ErrNoRoom.
func (r *Redis) RoomUsers(ctx context.Context, room string) ([]string, error) {
	const op = "room users"
	v, err := r.run(ctx, op, roomUsersScript,
		[]string{r.roomKey(room, roomSuffixes[rkRoom]), r.roomKey(room, roomSuffixes[rkJoined])})
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, noRoom(op, room)
	}
	users := stringsOf(v[1:])
	slices.Sort(users)
	return users, nil
}

// ClientRooms returns the rooms clientID has joined, sorted; it is empty for an unknown
// client id.
func (r *Redis) ClientRooms(ctx context.Context, clientID string) ([]string, error) {
	const op = "client rooms"
	rooms, err := r.client.SMembers(ctx, r.clientKey(clientID, "rooms")).Result()
	if err != nil {
		return nil, redisError(op, err)
	}
	if len(rooms) == 0 {
		return []string{}, nil
	}
	joined := make([]*redis.BoolCmd, len(rooms))
	err = r.pipelined(ctx, op, func(p redis.Pipeliner) {
		for i, room := range rooms {
			joined[i] = p.HExists(ctx, r.roomKey(room, roomSuffixes[rkMembers]), clientID)
		}
	})
	if err != nil {
		return nil, err
	}
	out := rooms[:0]
	for i, room := range rooms {
		if joined[i].Val() {
			out = append(out, room)
		}
	}
	slices.Sort(out)
	return out, nil
}

// UserSeen reports whether user has a connection joined to room, and the time of the user's
// last join or leave there (0 when never seen). It returns ErrNoRoom for a missing room.
func (r *Redis) UserSeen(ctx context.Context, room, user string) (bool, int64, error) {
	const op = "user seen"
	v, err := r.run(ctx, op, userSeenScript, []string{
		r.roomKey(room, roomSuffixes[rkRoom]),
		r.roomKey(room, roomSuffixes[rkJoined]),
		r.roomKey(room, roomSuffixes[rkSeen]),
	}, user)
	if err != nil {
		return false, 0, err
	}
	if len(v) == 0 {
		return false, 0, noRoom(op, room)
	}
	return intAt(v, 0) > 0, intAt(v, 1), nil
}
