package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Connections in Redis. A client id's current connection is the hash {P:client:ID}:conn
// (user, session, seq, instance, connection time, will); it is the authority on who holds the
// client id. Each instance's connections are indexed in the set {P:instance:ID}:conns, so that
// survivors find the connections of an instance that died; its entries that the client id's
// hash does not confirm are stale. Each user's
// connections are indexed in the hash {P:user:NAME}:conns, client id -> "SEQ JSON", where SEQ
// is the sequence number that the client id's hash had when the connection was recorded and
// JSON holds the rest of the connection.
//
// Sequence numbers order the connections of one client id: each one is the Redis server's
// clock in microseconds, or one more than its predecessor when the clock has not moved on.
// A user's index is written after the client id's hash and never replaces an entry with a
// newer sequence number, so concurrent takeovers leave the index entry of the winner. An
// index entry whose client id's hash no longer holds it (after a takeover by another user,
// or a crash between the steps) is stale: the readers skip and delete it.

// connSwapScript makes a connection the current one of its client id. KEYS: the client id's
// connection hash. ARGV: user, session, instance, connected-at, will ("" for none). Returns
// {seq, 1, old user, old seq, old instance} after replacing a connection, {seq, 0, "", "0",
// ""} when there was none.
var connSwapScript = redis.NewScript(`
local old = redis.call('HMGET', KEYS[1], 'user', 'seq', 'instance')
local t = redis.call('TIME')
local seq = tonumber(t[1]) * 1000000 + tonumber(t[2])
local prev = tonumber(old[2] or '')
if prev and prev >= seq then
	seq = prev + 1
end
seq = string.format('%.0f', seq)
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'session', ARGV[2], 'seq', seq, 'instance', ARGV[3], 'at', ARGV[4])
if ARGV[5] ~= '' then
	redis.call('HSET', KEYS[1], 'will', ARGV[5])
else
	redis.call('HDEL', KEYS[1], 'will')
end
if old[1] then
	return {seq, 1, old[1], old[2] or '0', old[3] or ''}
end
return {seq, 0, '', '0', ''}
`)

// nextVersion is the Lua code that sets version to the next version kept in the key
// KEYS[2]: the Redis server's clock in microseconds, or one more than the last version when
// the clock has not moved on (so versions keep growing after a restart of Redis that lost
// the data). It orders a user's counts of connections, and retained messages.
const nextVersion = `
local t = redis.call('TIME')
local version = tonumber(t[1]) * 1000000 + tonumber(t[2])
local prev = tonumber(redis.call('GET', KEYS[2]) or '')
if prev and prev >= version then
	version = prev + 1
end
version = string.format('%.0f', version)
redis.call('SET', KEYS[2], version)
`

// connPutScript records a connection in its user's index unless a newer one of its client id
// is there. KEYS: the user's connection index, the user's version key. ARGV: client id, seq,
// entry. Returns {number of entries, version}.
var connPutScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or (tonumber(string.match(cur, '^%d+')) or 0) < tonumber(ARGV[2]) then
	redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end` + nextVersion + `
return {redis.call('HLEN', KEYS[1]), version}
`)

// connDropScript removes a client id's entry from a user's index if its seq is at most the
// given one. KEYS: the user's connection index, the user's version key. ARGV: client id, seq.
// Returns {number of entries, version}.
var connDropScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and (tonumber(string.match(cur, '^%d+')) or 0) <= tonumber(ARGV[2]) then
	redis.call('HDEL', KEYS[1], ARGV[1])
end` + nextVersion + `
return {redis.call('HLEN', KEYS[1]), version}
`)

// connRemoveScript removes the connection of a client id if it has the given session. KEYS:
// the client id's connection hash. ARGV: session. Returns {0} when there is no connection,
// {1, user} when it has another session, {2, user, seq, instance} when it removed it.
var connRemoveScript = redis.NewScript(`
local c = redis.call('HMGET', KEYS[1], 'user', 'session', 'seq', 'instance')
if not c[1] then
	return {0}
end
if c[2] ~= ARGV[1] then
	return {1, c[1]}
end
redis.call('DEL', KEYS[1])
return {2, c[1], c[3] or '0', c[4] or ''}
`)

// connEntry is the part of a Connection that a user's index holds besides the client id.
type connEntry struct {
	Session     string `json:"s"`
	Instance    string `json:"i"`
	ConnectedAt int64  `json:"t"`
}

// userConns returns the keys of user's connection index and version.
func (r *Redis) userConns(user string) []string {
	return []string{r.userKey(user, "conns"), r.userKey(user, "connver")}
}

// instanceConns returns the key of the set of the client ids of an instance's connections.
func (r *Redis) instanceConns(instance string) string {
	return "{" + r.prefix + ":instance:" + instance + "}:conns"
}

// userCount returns the count and version that connPutScript or connDropScript returned.
func userCount(v []any) UserCount {
	version, _ := strconv.ParseUint(strAt(v, 1), 10, 64)
	return UserCount{N: int(intAt(v, 0)), Version: version}
}

// AddConnection records c and returns how many connections c.User now has. A connection with
// the same ClientID, of any session or user, is replaced and no longer counted for its user.
//
// It adds the client id to its instance's set, swaps the client id's connection, records c
// in c.User's index, then removes the replaced connection from the index of its user and the
// set of its instance when those are others; each step is one command or script. The count
// skips index entries that their client ids no longer hold.
func (r *Redis) AddConnection(ctx context.Context, c Connection) (UserCount, error) {
	const op = "add connection"
	if err := r.client.SAdd(ctx, r.instanceConns(c.Instance), c.ClientID).Err(); err != nil {
		return UserCount{}, redisError(op, err)
	}
	v, err := r.run(ctx, op, connSwapScript, []string{r.clientKey(c.ClientID, "conn")},
		c.User, c.Session, c.Instance, c.ConnectedAt, c.Will)
	if err != nil {
		return UserCount{}, err
	}
	seq := strAt(v, 0)
	entry, err := json.Marshal(connEntry{Session: c.Session, Instance: c.Instance, ConnectedAt: c.ConnectedAt})
	if err != nil {
		return UserCount{}, fmt.Errorf("store: redis: %s: %w", op, err)
	}
	v2, err := r.run(ctx, op, connPutScript, r.userConns(c.User), c.ClientID, seq, seq+" "+string(entry))
	if err != nil {
		return UserCount{}, err
	}
	count := userCount(v2)
	if intAt(v, 1) == 1 {
		if old := strAt(v, 2); old != c.User {
			if _, err := r.run(ctx, op, connDropScript, r.userConns(old), c.ClientID, strAt(v, 3)); err != nil {
				return UserCount{}, err
			}
		}
		if old := strAt(v, 4); old != c.Instance {
			if err := r.client.SRem(ctx, r.instanceConns(old), c.ClientID).Err(); err != nil {
				return UserCount{}, redisError(op, err)
			}
		}
	}
	if count.N > 1 {
		conns, err := r.liveConnections(ctx, op, c.User)
		if err != nil {
			return UserCount{}, err
		}
		count.N = len(conns)
	}
	return count, nil
}

// RemoveConnection removes the connection of clientID if its Session is session, and returns
// whether it removed it and how many connections its user has left. When the connection of
// clientID has another session (it was taken over), nothing is removed and left counts the
// entries of the index of the user of the stored connection; when there is no connection of
// clientID, it returns false and 0. Room memberships are left to the caller.
//
// It removes the client id's connection, then the entry of the user's index, then the client
// id from its instance's set; each step is one script or command.
func (r *Redis) RemoveConnection(ctx context.Context, clientID, session string) (bool, UserCount, error) {
	const op = "remove connection"
	v, err := r.run(ctx, op, connRemoveScript, []string{r.clientKey(clientID, "conn")}, session)
	if err != nil {
		return false, UserCount{}, err
	}
	user := strAt(v, 1)
	switch intAt(v, 0) {
	case 0:
		return false, UserCount{}, nil
	case 1:
		n, err := r.client.HLen(ctx, r.userKey(user, "conns")).Result()
		if err != nil {
			return false, UserCount{}, redisError(op, err)
		}
		return false, UserCount{N: int(n)}, nil
	}
	instance := strAt(v, 3)
	v, err = r.run(ctx, op, connDropScript, r.userConns(user), clientID, strAt(v, 2))
	if err != nil {
		return true, UserCount{}, err
	}
	count := userCount(v)
	if err := r.client.SRem(ctx, r.instanceConns(instance), clientID).Err(); err != nil {
		return true, UserCount{}, redisError(op, err)
	}
	if count.N > 0 {
		conns, err := r.liveConnections(ctx, op, user)
		if err != nil {
			return true, UserCount{}, err
		}
		count.N = len(conns)
	}
	return true, count, nil
}

// InstanceConnections returns the connections held by instance, sorted by ClientID, with
// their wills. It reads the instance's set of client ids, keeps those whose current
// connection is on instance, and deletes the others from the set.
func (r *Redis) InstanceConnections(ctx context.Context, instance string) ([]Connection, error) {
	const op = "instance connections"
	set := r.instanceConns(instance)
	ids, err := r.client.SMembers(ctx, set).Result()
	if err != nil {
		return nil, redisError(op, err)
	}
	slices.Sort(ids)
	holders := make([]*redis.SliceCmd, len(ids))
	if len(ids) > 0 {
		err = r.pipelined(ctx, op, func(p redis.Pipeliner) {
			for i, id := range ids {
				holders[i] = p.HMGet(ctx, r.clientKey(id, "conn"), "user", "session", "instance", "at", "will")
			}
		})
		if err != nil {
			return nil, err
		}
	}
	conns := make([]Connection, 0, len(ids))
	var stale []any
	for i, id := range ids {
		h := holders[i].Val()
		str := func(j int) string {
			s, _ := h[j].(string)
			return s
		}
		if len(h) != 5 || str(0) == "" || str(2) != instance {
			stale = append(stale, id)
			continue
		}
		c := Connection{ClientID: id, User: str(0), Session: str(1), Instance: instance}
		c.ConnectedAt, _ = strconv.ParseInt(str(3), 10, 64)
		if w := str(4); w != "" {
			c.Will = []byte(w)
		}
		conns = append(conns, c)
	}
	if len(stale) > 0 {
		if err := r.client.SRem(ctx, set, stale...).Err(); err != nil {
			return nil, redisError(op, err)
		}
	}
	return conns, nil
}

// UserConnections returns a user's connections, sorted by ClientID; it is empty for a user
// without connections.
func (r *Redis) UserConnections(ctx context.Context, user string) ([]Connection, error) {
	return r.liveConnections(ctx, "user connections", user)
}

// liveConnections returns the connections in user's index that their client ids hold, sorted
// by ClientID, and deletes the stale entries.
func (r *Redis) liveConnections(ctx context.Context, op, user string) ([]Connection, error) {
	index := r.userKey(user, "conns")
	entries, err := r.client.HGetAll(ctx, index).Result()
	if err != nil {
		return nil, redisError(op, err)
	}
	ids := make([]string, 0, len(entries))
	for id := range entries {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	holders := make([]*redis.SliceCmd, len(ids))
	if len(ids) > 0 {
		err = r.pipelined(ctx, op, func(p redis.Pipeliner) {
			for i, id := range ids {
				holders[i] = p.HMGet(ctx, r.clientKey(id, "conn"), "user", "seq")
			}
		})
		if err != nil {
			return nil, err
		}
	}
	conns := make([]Connection, 0, len(ids))
	for i, id := range ids {
		seq, data, _ := strings.Cut(entries[id], " ")
		var e connEntry
		h := holders[i].Val()
		if len(h) == 2 && h[0] == user && h[1] == seq && json.Unmarshal([]byte(data), &e) == nil {
			conns = append(conns, Connection{
				ClientID:    id,
				Session:     e.Session,
				User:        user,
				Instance:    e.Instance,
				ConnectedAt: e.ConnectedAt,
			})
			continue
		}
		if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
			seq = "0"
		}
		if _, err := r.run(ctx, op, connDropScript, r.userConns(user), id, seq); err != nil {
			return nil, err
		}
	}
	return conns, nil
}
