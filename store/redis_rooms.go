package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// createRoomScript creates a room unless it exists. KEYS: the room's keys (roomKeys). ARGV:
// field, value pairs of the settings hash. Returns {1} when it created the room, {0, owner}
// when the room exists.
var createRoomScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
	return {0, redis.call('HGET', KEYS[1], 'owner') or ''}
end
redis.call('DEL', unpack(KEYS, 2))
redis.call('HSET', KEYS[1], 'last', 0, unpack(ARGV))
return {1}
`)

// deleteRoomScript deletes every key of a room. KEYS: the room's keys (roomKeys). Returns {}
// when the room does not exist, else {owner, joined client ids...}.
var deleteRoomScript = redis.NewScript(`
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then
	return {}
end
local clients = redis.call('HKEYS', KEYS[3])
redis.call('DEL', unpack(KEYS))
table.insert(clients, 1, owner)
return clients
`)

// CreateRoom creates a room with an empty history whose first message will get id 1, and a
// new random epoch, also when a room of that name existed before and was deleted. It returns
// ErrRoomExists when the name is taken.
//
// The room's keys are written by one script. The room name and owner indexes are updated
// before it, so that a crash leaves at worst index entries of a room that does not exist,
// which RoomNames and CountOwnedRooms skip, and again after it, so that a DeleteRoom of the
// previous room of that name, running at the same time, cannot remove them.
func (r *Redis) CreateRoom(ctx context.Context, room Room) error {
	const op = "create room"
	if err := r.indexRoom(ctx, op, room.Name, room.Owner); err != nil {
		return err
	}
	v, err := r.run(ctx, op, createRoomScript, r.roomKeys(room.Name),
		"epoch", newEpoch(),
		"owner", room.Owner,
		"checker", room.Checker,
		"wl", boolField(room.WhitelistOnly),
		"nacl", boolField(room.NotifyAccessLists),
		"nul", boolField(room.NotifyUserlist),
		"max", room.MaxMessageSize,
		"at", room.CreatedAt,
	)
	if err != nil {
		return err
	}
	if intAt(v, 0) == 0 {
		if strAt(v, 1) != room.Owner {
			if err := r.unindexOwned(ctx, op, room.Name, room.Owner); err != nil {
				return err
			}
		}
		return fmt.Errorf("store: create room %q: %w", room.Name, ErrRoomExists)
	}
	return r.indexRoom(ctx, op, room.Name, room.Owner)
}

// indexRoom adds a room to the set of room names and to its owner's rooms.
func (r *Redis) indexRoom(ctx context.Context, op, name, owner string) error {
	return r.pipelined(ctx, op, func(p redis.Pipeliner) {
		p.SAdd(ctx, r.names, name)
		p.SAdd(ctx, r.userKey(owner, "owned"), name)
	})
}

// unindexOwned takes back the owner index entry that a refused CreateRoom added, then adds it
// back if owner has created the room meanwhile. A leftover entry would be skipped anyway; this
// keeps refused attempts from piling up.
func (r *Redis) unindexOwned(ctx context.Context, op, name, owner string) error {
	owned := r.userKey(owner, "owned")
	if err := r.client.SRem(ctx, owned, name).Err(); err != nil {
		return redisError(op, err)
	}
	now, err := r.client.HGet(ctx, r.roomKey(name, roomSuffixes[rkRoom]), "owner").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return redisError(op, err)
	}
	if now == owner {
		if err := r.client.SAdd(ctx, owned, name).Err(); err != nil {
			return redisError(op, err)
		}
	}
	return nil
}

func boolField(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Room returns the settings of the room called name, or ErrNoRoom.
func (r *Redis) Room(ctx context.Context, name string) (Room, error) {
	fields, err := r.client.HGetAll(ctx, r.roomKey(name, "room")).Result()
	if err != nil {
		return Room{}, redisError("room", err)
	}
	if len(fields) == 0 {
		return Room{}, noRoom("room", name)
	}
	return decodeRoom(name, fields), nil
}

// decodeRoom returns the room stored in a settings hash.
func decodeRoom(name string, f map[string]string) Room {
	maxSize, _ := strconv.Atoi(f["max"])
	at, _ := strconv.ParseInt(f["at"], 10, 64)
	return Room{
		Name:              name,
		Owner:             f["owner"],
		Checker:           f["checker"],
		WhitelistOnly:     f["wl"] == "1",
		NotifyAccessLists: f["nacl"] == "1",
		NotifyUserlist:    f["nul"] == "1",
		MaxMessageSize:    maxSize,
		CreatedAt:         at,
	}
}

// decodeRoomPairs returns the room stored in a settings hash given as field, value pairs.
func decodeRoomPairs(name string, pairs []any) Room {
	f := make(map[string]string, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		f[strAt(pairs, i)] = strAt(pairs, i+1)
	}
	return decodeRoom(name, f)
}

// DeleteRoom deletes a room with its history, its membership, its access lists and the
// last-seen times of its users, or returns ErrNoRoom. Afterwards ClientRooms no longer lists
// the room.
//
// The room's keys are deleted by one script; the room name, owner and client id indexes are
// updated after it, so that a crash leaves at worst index entries of a room that does not
// exist, which the readers skip. When a room of that name was created again meanwhile, its
// index entries are restored.
func (r *Redis) DeleteRoom(ctx context.Context, name string) error {
	const op = "delete room"
	v, err := r.run(ctx, op, deleteRoomScript, r.roomKeys(name))
	if err != nil {
		return err
	}
	if len(v) == 0 {
		return noRoom(op, name)
	}
	owner, clients := strAt(v, 0), stringsOf(v[1:])
	err = r.pipelined(ctx, op, func(p redis.Pipeliner) {
		p.SRem(ctx, r.names, name)
		p.SRem(ctx, r.userKey(owner, "owned"), name)
		for _, c := range clients {
			p.SRem(ctx, r.clientKey(c, "rooms"), name)
		}
	})
	if err != nil {
		return err
	}
	return r.reindexRecreated(ctx, op, name, clients)
}

// reindexRecreated restores the index entries that DeleteRoom removed when a room of the same
// name was created, or clients joined it, while it ran.
func (r *Redis) reindexRecreated(ctx context.Context, op, name string, clients []string) error {
	owner, err := r.client.HGet(ctx, r.roomKey(name, "room"), "owner").Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return redisError(op, err)
	}
	if err := r.indexRoom(ctx, op, name, owner); err != nil {
		return err
	}
	if len(clients) == 0 {
		return nil
	}
	members := r.roomKey(name, "members")
	joined, err := r.client.HMGet(ctx, members, clients...).Result()
	if err != nil {
		return redisError(op, err)
	}
	return r.pipelined(ctx, op, func(p redis.Pipeliner) {
		for i, c := range clients {
			if joined[i] != nil {
				p.SAdd(ctx, r.clientKey(c, "rooms"), name)
			}
		}
	})
}

// RoomNames returns the names of all rooms, sorted.
func (r *Redis) RoomNames(ctx context.Context) ([]string, error) {
	const op = "room names"
	names, err := r.client.SMembers(ctx, r.names).Result()
	if err != nil {
		return nil, redisError(op, err)
	}
	exists := make([]*redis.IntCmd, len(names))
	if len(names) > 0 {
		err = r.pipelined(ctx, op, func(p redis.Pipeliner) {
			for i, n := range names {
				exists[i] = p.Exists(ctx, r.roomKey(n, "room"))
			}
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(names))
	for i, n := range names {
		if exists[i].Val() == 1 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// CountOwnedRooms returns how many rooms owner owns.
func (r *Redis) CountOwnedRooms(ctx context.Context, owner string) (int, error) {
	const op = "count owned rooms"
	names, err := r.client.SMembers(ctx, r.userKey(owner, "owned")).Result()
	if err != nil {
		return 0, redisError(op, err)
	}
	if len(names) == 0 {
		return 0, nil
	}
	owners := make([]*redis.StringCmd, len(names))
	err = r.pipelined(ctx, op, func(p redis.Pipeliner) {
		for i, n := range names {
			owners[i] = p.HGet(ctx, r.roomKey(n, "room"), "owner")
		}
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range owners {
		if c.Err() == nil && c.Val() == owner {
			n++
		}
	}
	return n, nil
}
