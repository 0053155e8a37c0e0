package store

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Instances and presences in Redis. The heartbeats of all instances are one sorted set, the
// end of each instance's ttl its score in milliseconds of the Redis server's clock, so that
// the instances' own clocks do not matter; the claims on dead instances are another, in the
// same slot.

// nowMillis is the Lua code that sets now to the Redis server's clock in milliseconds.
const nowMillis = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// heartbeatScript records a heartbeat. KEYS: alive, claimed. ARGV: instance, ttl in ms.
// Returns {1} when the instance had a record and nobody claimed it, {0} otherwise.
var heartbeatScript = redis.NewScript(nowMillis + `
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
local claimed = redis.call('ZSCORE', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if known and not claimed then
	return {1}
end
return {0}
`)

// claimScript claims a dead instance. KEYS: alive, claimed. ARGV: lease in ms. Returns
// {instance}, or {} when there is none to claim.
var claimScript = redis.NewScript(nowMillis + `
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, 100)
for _, inst in ipairs(dead) do
	local lease = tonumber(redis.call('ZSCORE', KEYS[2], inst) or '')
	if not lease or lease < now then
		redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), inst)
		return {inst}
	end
end
return {}
`)

// releaseScript forgets a claimed instance unless it is alive again. KEYS: alive, claimed.
// ARGV: instance. Returns {1} when it forgot it, {0} when it is alive.
var releaseScript = redis.NewScript(nowMillis + `
redis.call('ZREM', KEYS[2], ARGV[1])
local expires = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '')
if expires and expires >= now then
	return {0}
end
redis.call('ZREM', KEYS[1], ARGV[1])
return {1}
`)

// setPresenceScript stores a presence unless a newer one is stored. KEYS: the presence hash.
// ARGV: user, version, payload. Returns {1} when it stored it, {0} otherwise.
var setPresenceScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and (tonumber(string.match(cur, '^%d+')) or 0) > tonumber(ARGV[2]) then
	return {0}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
return {1}
`)

// setRetainedScript stores or removes a retained message. KEYS: the retained hash, the version
// key. ARGV: topic, "1" to remove or "0" to store, message. Returns {version}.
var setRetainedScript = redis.NewScript(nextVersion + `
if ARGV[2] == '1' then
	redis.call('HDEL', KEYS[1], ARGV[1])
else
	redis.call('HSET', KEYS[1], ARGV[1], version .. ' ' .. ARGV[3])
end
return {version}
`)

// instancesKeys returns the keys of the heartbeats and claims.
func (r *Redis) instancesKeys() []string {
	tag := "{" + r.prefix + ":instances}:"
	return []string{tag + "alive", tag + "claimed"}
}

// Heartbeat records that instance is alive for ttl from now, by the Redis server's clock, and
// reports whether its record continued (it had one, and nobody claimed it).
func (r *Redis) Heartbeat(ctx context.Context, instance string, ttl time.Duration) (bool, error) {
	v, err := r.run(ctx, "heartbeat", heartbeatScript, r.instancesKeys(), instance, ttl.Milliseconds())
	if err != nil {
		return false, err
	}
	return intAt(v, 0) == 1, nil
}

// ClaimDeadInstance returns an instance whose heartbeat expired and that nobody claimed in
// the last lease, and claims it for lease; "" when there is none.
func (r *Redis) ClaimDeadInstance(ctx context.Context, lease time.Duration) (string, error) {
	v, err := r.run(ctx, "claim dead instance", claimScript, r.instancesKeys(), lease.Milliseconds())
	if err != nil {
		return "", err
	}
	return strAt(v, 0), nil
}

// ReleaseDeadInstance forgets a claimed instance once it is cleaned up, unless a heartbeat
// came in the meantime.
func (r *Redis) ReleaseDeadInstance(ctx context.Context, instance string) error {
	const op = "release dead instance"
	v, err := r.run(ctx, op, releaseScript, r.instancesKeys(), instance)
	if err != nil || intAt(v, 0) == 0 {
		return err
	}
	if err := r.client.Del(ctx, r.instanceRoutes(instance)).Err(); err != nil {
		return redisError(op, err)
	}
	return nil
}

// RemoveInstance forgets an instance that stopped gracefully, then its routes.
func (r *Redis) RemoveInstance(ctx context.Context, instance string) error {
	keys := r.instancesKeys()
	err := r.pipelined(ctx, "remove instance", func(p redis.Pipeliner) {
		p.ZRem(ctx, keys[0], instance)
		p.ZRem(ctx, keys[1], instance)
	})
	if err != nil {
		return err
	}
	if err := r.client.Del(ctx, r.instanceRoutes(instance)).Err(); err != nil {
		return redisError("remove instance", err)
	}
	return nil
}

// instanceRoutes returns the key of the set of an instance's topic filters.
func (r *Redis) instanceRoutes(instance string) string {
	return "{" + r.prefix + ":instance:" + instance + "}:routes"
}

// AddRoute records that instance has subscribers for filter.
func (r *Redis) AddRoute(ctx context.Context, instance, filter string) error {
	if err := r.client.SAdd(ctx, r.instanceRoutes(instance), filter).Err(); err != nil {
		return redisError("add route", err)
	}
	return nil
}

// SetRoutes replaces the filters of instance, in one transaction on its key.
func (r *Redis) SetRoutes(ctx context.Context, instance string, filters []string) error {
	key := r.instanceRoutes(instance)
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		if len(filters) > 0 {
			members := make([]any, len(filters))
			for i, f := range filters {
				members[i] = f
			}
			p.SAdd(ctx, key, members...)
		}
		return nil
	})
	if err != nil {
		return redisError("set routes", err)
	}
	return nil
}

// Routes returns the filters of every instance with a heartbeat, sorted.
func (r *Redis) Routes(ctx context.Context) (map[string][]string, error) {
	const op = "routes"
	instances, err := r.client.ZRange(ctx, r.instancesKeys()[0], 0, -1).Result()
	if err != nil {
		return nil, redisError(op, err)
	}
	cmds := make([]*redis.StringSliceCmd, len(instances))
	if len(instances) > 0 {
		err = r.pipelined(ctx, op, func(p redis.Pipeliner) {
			for i, inst := range instances {
				cmds[i] = p.SMembers(ctx, r.instanceRoutes(inst))
			}
		})
		if err != nil {
			return nil, err
		}
	}
	out := make(map[string][]string, len(instances))
	for i, inst := range instances {
		filters := cmds[i].Val()
		slices.Sort(filters)
		out[inst] = filters
	}
	return out, nil
}

// presenceKey returns the key of the hash of every user's presence.
func (r *Redis) presenceKey() string { return "{" + r.prefix + ":presence}:users" }

// SetPresence stores p unless a presence of p.User with a higher Version is stored.
func (r *Redis) SetPresence(ctx context.Context, p Presence) error {
	_, err := r.run(ctx, "set presence", setPresenceScript, []string{r.presenceKey()},
		p.User, strconv.FormatUint(p.Version, 10), p.Payload)
	return err
}

// scanCount is how many fields one HSCAN asks for.
const scanCount = 1000

// Presences returns the stored presence of every user. It reads the hash in steps (HSCAN),
// so a presence stored meanwhile may be missing or come in its older version.
func (r *Redis) Presences(ctx context.Context) ([]Presence, error) {
	var out []Presence
	err := r.scanVersioned(ctx, "presences", r.presenceKey(), func(user string, version uint64, payload []byte) {
		out = append(out, Presence{User: user, Version: version, Payload: payload})
	})
	return out, err
}

// retainedKeys returns the keys of the retained messages and of their version.
func (r *Redis) retainedKeys() []string {
	tag := "{" + r.prefix + ":retained}:"
	return []string{tag + "topics", tag + "version"}
}

// SetRetained stores or removes the retained message of topic; versions are the Redis
// server's clock in microseconds, or one more than the last when the clock has not moved on.
func (r *Redis) SetRetained(ctx context.Context, topic string, message []byte) (uint64, error) {
	remove := "0"
	if message == nil {
		remove = "1"
	}
	v, err := r.run(ctx, "set retained", setRetainedScript, r.retainedKeys(), topic, remove, message)
	if err != nil {
		return 0, err
	}
	version, _ := strconv.ParseUint(strAt(v, 0), 10, 64)
	return version, nil
}

// RetainedMessages returns every retained message, read in steps (HSCAN).
func (r *Redis) RetainedMessages(ctx context.Context) ([]RetainedMessage, error) {
	var out []RetainedMessage
	err := r.scanVersioned(ctx, "retained messages", r.retainedKeys()[0], func(key string, version uint64, value []byte) {
		out = append(out, RetainedMessage{Topic: key, Version: version, Message: value})
	})
	return out, err
}

// scanVersioned calls fn with every field of a hash of "VERSION VALUE" entries, read in steps.
func (r *Redis) scanVersioned(ctx context.Context, op, key string, fn func(field string, version uint64, value []byte)) error {
	var cursor uint64
	for {
		kv, next, err := r.client.HScan(ctx, key, cursor, "", scanCount).Result()
		if err != nil {
			return redisError(op, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			version, value, _ := strings.Cut(kv[i+1], " ")
			v, err := strconv.ParseUint(version, 10, 64)
			if err != nil {
				continue
			}
			fn(kv[i], v, []byte(value))
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// grantReplyScript adds a right to reply. KEYS: the client's rights to the topic. ARGV: ttl in
// ms. Returns {}.
var grantReplyScript = redis.NewScript(nowMillis + `
redis.call('RPUSH', KEYS[1], now + tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return {}
`)

// useReplyScript spends the oldest unexpired right to reply, dropping the expired ones. KEYS:
// the client's rights to the topic. Returns {1} when it spent one, {0} otherwise.
var useReplyScript = redis.NewScript(nowMillis + `
while true do
	local expires = redis.call('LPOP', KEYS[1])
	if not expires then
		return {0}
	end
	if tonumber(expires) >= now then
		return {1}
	end
end
`)

// replyKey returns the key of a client's rights to reply on topic: a list of expiry times in
// ms, oldest first, in the client id's slot.
func (r *Redis) replyKey(clientID, topic string) string {
	return r.clientKey(clientID, "reply:"+topic)
}

// GrantReply lets clientID publish once to topic within ttl.
func (r *Redis) GrantReply(ctx context.Context, clientID, topic string, ttl time.Duration) error {
	_, err := r.run(ctx, "grant reply", grantReplyScript, []string{r.replyKey(clientID, topic)}, ttl.Milliseconds())
	return err
}

// UseReply spends one of clientID's unexpired rights to publish to topic.
func (r *Redis) UseReply(ctx context.Context, clientID, topic string) (bool, error) {
	v, err := r.run(ctx, "use reply", useReplyScript, []string{r.replyKey(clientID, topic)})
	if err != nil {
		return false, err
	}
	return intAt(v, 0) == 1, nil
}
