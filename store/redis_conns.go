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
// (user, session, seq); it is the authority on who holds the client id. Each user's
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
// connection hash. ARGV: user, session. Returns {seq, 1, old user, old seq} after replacing a
// connection, {seq, 0, empty string, '0'} when there was none.
var connSwapScript = redis.NewScript(`
local old = redis.call('HMGET', KEYS[1], 'user', 'seq')
local t = redis.call('TIME')
local seq = tonumber(t[1]) * 1000000 + tonumber(t[2])
local prev = tonumber(old[2] or '')
if prev and prev >= seq then
	seq = prev + 1
end
seq = string.format('%.0f', seq)
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'session', ARGV[2], 'seq', seq)
if old[1] then
	return {seq, 1, old[1], old[2] or '0'}
end
return {seq, 0, '', '0'}
`)

// connPutScript records a connection in its user's index unless a newer one of its client id
// is there. KEYS: the user's connection index. ARGV: client id, seq, entry. Returns {number of
// entries}.
var connPutScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or (tonumber(string.match(cur, '^%d+')) or 0) < tonumber(ARGV[2]) then
	redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return {redis.call('HLEN', KEYS[1])}
`)

// connDropScript removes a client id's entry from a user's index if its seq is at most the
// given one. KEYS: the user's connection index. ARGV: client id, seq. Returns {number of
// entries}.
var connDropScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and (tonumber(string.match(cur, '^%d+')) or 0) <= tonumber(ARGV[2]) then
	redis.call('HDEL', KEYS[1], ARGV[1])
end
return {redis.call('HLEN', KEYS[1])}
`)

// connRemoveScript removes the connection of a client id if it has the given session. KEYS:
// the client id's connection hash. ARGV: session. Returns {0} when there is no connection,
// {1, user} when it has another session, {2, user, seq} when it removed it.
var connRemoveScript = redis.NewScript(`
local c = redis.call('HMGET', KEYS[1], 'user', 'session', 'seq')
if not c[1] then
	return {0}
end
if c[2] ~= ARGV[1] then
	return {1, c[1]}
end
redis.call('DEL', KEYS[1])
return {2, c[1], c[3] or '0'}
`)

// connEntry is the part of a Connection that a user's index holds besides the client id.
type connEntry struct {
	Session     string `json:"s"`
	Instance    string `json:"i"`
	ConnectedAt int64  `json:"t"`
}

// AddConnection records c and returns how many connections c.User now has. A connection with
// the same ClientID, of any session or user, is replaced and no longer counted for its user.
//
// It swaps the client id's connection, then records c in c.User's index, then removes the
// replaced connection from the index of its user when that is another one; each step is one
// script. The count skips index entries that their client ids no longer hold.
func (r *Redis) AddConnection(ctx context.Context, c Connection) (int, error) {
	const op = "add connection"
	v, err := r.run(ctx, op, connSwapScript, []string{r.clientKey(c.ClientID, "conn")}, c.User, c.Session)
	if err != nil {
		return 0, err
	}
	seq := strAt(v, 0)
	entry, err := json.Marshal(connEntry{Session: c.Session, Instance: c.Instance, ConnectedAt: c.ConnectedAt})
	if err != nil {
		return 0, fmt.Errorf("store: redis: %s: %w", op, err)
	}
	v2, err := r.run(ctx, op, connPutScript, []string{r.userKey(c.User, "conns")}, c.ClientID, seq, seq+" "+string(entry))
	if err != nil {
		return 0, err
	}
	n := int(intAt(v2, 0))
	if intAt(v, 1) == 1 && strAt(v, 2) != c.User {
		_, err := r.run(ctx, op, connDropScript, []string{r.userKey(strAt(v, 2), "conns")}, c.ClientID, strAt(v, 3))
		if err != nil {
			return 0, err
		}
	}
	if n > 1 {
		conns, err := r.liveConnections(ctx, op, c.User)
		if err != nil {
			return 0, err
		}
		n = len(conns)
	}
	return n, nil
}

// RemoveConnection removes the connection of clientID if its Session is session, and returns
// whether it removed it and how many connections its user has left. When the connection of
// clientID has another session (it was taken over), nothing is removed and left counts the
// entries of the index of the user of the stored connection; when there is no connection of
// clientID, it returns false and 0. Room memberships are left to the caller.
//
// It removes the client id's connection, then the entry of the user's index; each step is
// one script.
func (r *Redis) RemoveConnection(ctx context.Context, clientID, session string) (bool, int, error) {
	const op = "remove connection"
	v, err := r.run(ctx, op, connRemoveScript, []string{r.clientKey(clientID, "conn")}, session)
	if err != nil {
		return false, 0, err
	}
	user := strAt(v, 1)
	switch intAt(v, 0) {
	case 0:
		return false, 0, nil
	case 1:
		n, err := r.client.HLen(ctx, r.userKey(user, "conns")).Result()
		if err != nil {
			return false, 0, redisError(op, err)
		}
		return false, int(n), nil
	}
	v, err = r.run(ctx, op, connDropScript, []string{r.userKey(user, "conns")}, clientID, strAt(v, 2))
	if err != nil {
		return true, 0, err
	}
	n := int(intAt(v, 0))
	if n > 0 {
		conns, err := r.liveConnections(ctx, op, user)
		if err != nil {
			return true, 0, err
		}
		n = len(conns)
	}
	return true, n, nil
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
		if _, err := r.run(ctx, op, connDropScript, []string{index}, id, seq); err != nil {
			return nil, err
		}
	}
	return conns, nil
}
