package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix is the key prefix of a Redis store whose options name none.
const DefaultRedisPrefix = "roomq"

// RedisOptions configures a Redis store.
type RedisOptions struct {
	// Client is the connection to Redis: a *redis.Client for a single server or a
	// *redis.ClusterClient for a Redis Cluster (see NewRedisClient). Required. The store owns
	// it once NewRedis succeeds: Close closes it.
	Client redis.UniversalClient
	// Prefix starts every key of the store, so that several stores can share one Redis. It
	// must not contain '{' or '}', which delimit Redis Cluster hash tags. Default
	// DefaultRedisPrefix.
	Prefix string
}

// Redis is a Store kept in Redis, a single server or a Redis Cluster, so that several broker
// instances share rooms, histories, connections and memberships.
//
// # Keys
//
// The keys of one room share the hash tag {prefix:room:NAME}, so that they live in one
// Cluster slot and one Lua script can change them together:
//
//	{P:room:NAME}:room          hash: settings, epoch, last message id
//	{P:room:NAME}:history       list: encoded messages in id order; FirstID = last - LLEN + 1
//	{P:room:NAME}:members       hash: client id -> user
//	{P:room:NAME}:joined        hash: user -> number of joined connections
//	{P:room:NAME}:seen          hash: user -> time of the last join or leave
//	{P:room:NAME}:acl:LIST      set: the users on an access list (adminlist, blacklist, whitelist)
//
// The keys of one user share {prefix:user:NAME}, those of one MQTT client id
// {prefix:client:ID}:
//
//	{P:user:NAME}:conns         hash: client id -> connection (sequence number, session, ...)
//	{P:user:NAME}:connver       string: version of the user's last count of connections
//	{P:user:NAME}:owned         set: names of the rooms the user owns
//	{P:user:NAME}:acl:LIST      set: the user's direct-message lists (blacklist, whitelist)
//	{P:user:NAME}:settings      hash: wl = "1" when the user's direct messages are whitelist-only
//	{P:client:ID}:conn          hash: the current connection of the client id (user, session, seq, ...)
//	{P:client:ID}:rooms         set: the rooms the client id has joined
//	{P:client:ID}:reply:TOPIC   list: expiry times (ms) of the client's rights to reply on TOPIC
//	{P:instance:ID}:conns       set: client ids of the connections of a broker instance
//	{P:instance:ID}:routes      set: topic filters the instance has subscribers for
//	{P:instances}:alive         sorted set: instance -> end of its heartbeat's ttl (ms)
//	{P:instances}:claimed       sorted set: dead instance -> end of its cleaner's lease (ms)
//	{P:presence}:users          hash: user -> "VERSION PAYLOAD", the latest presence message
//	{P:retained}:topics         hash: topic -> "VERSION MESSAGE", the retained messages
//	{P:retained}:version        string: version of the last change of a retained message
//	P:rooms                     set: the names of all rooms
//
// # Atomicity
//
// Every change of a room's own keys is one script, atomic on a single server and in a
// Cluster alike: Append (next id, store, trim), the creation and deletion of a room with all
// its keys and a fresh epoch, a Join or Leave of the membership, and every AccessLists call.
// The reads of one room — Room, Range, Recent, HistoryInfo, RoomUsers, UserSeen, Access,
// ListUsers — each see one state of it. The same holds for the keys of one user or client id.
//
// The indexes across slots — the names of all rooms, the rooms of an owner, the rooms of a
// client id, the connections of a user — cannot change in the same step in a Cluster, and
// the store does not make them on a single server either. So CreateRoom, DeleteRoom, Join,
// Leave, AddConnection and RemoveConnection are a few steps each, and RoomNames,
// CountOwnedRooms, ClientRooms and UserConnections read an index and then check its entries
// against their authority: the room's settings hash, the room's members hash, the client
// id's current connection. The steps are ordered so that a crash or lost connection between
// them leaves only index entries that no longer match their authority, which the readers skip
// (and Leave and UserConnections delete), and so that concurrent calls never lose the index
// entry of a room, membership or connection that exists. Each method's comment gives its
// order.
//
// # Errors
//
// Failures to reach Redis — network errors, timeouts, a closed client, a Cluster that is
// down or failing over — are returned wrapping ErrUnavailable; errors of an ended context
// wrap the context's error too. A call that ends with ErrUnavailable may have been carried out
// in part or in full, when the failure came after Redis received it.
type Redis struct {
	client redis.UniversalClient
	prefix string
	names  string // key of the set of room names

	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*Redis)(nil)

// NewRedis returns a store kept in the Redis that opts.Client connects to. It checks that
// Redis answers and loads the store's Lua scripts, and returns an error wrapping
// ErrUnavailable when it cannot; the caller still owns the client then. Once NewRedis
// succeeds, the store owns the client and its Close closes it.
func NewRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	if opts.Client == nil {
		return nil, errors.New("store: redis: no client")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultRedisPrefix
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("store: redis: prefix %q contains '{' or '}'", opts.Prefix)
	}
	r := &Redis{client: opts.Client, prefix: opts.Prefix, names: opts.Prefix + ":rooms"}
	err := r.eachServer(ctx, func(ctx context.Context, c *redis.Client) error {
		if err := checkRedisVersion(ctx, c); err != nil {
			return err
		}
		for _, s := range allScripts {
			if err := s.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errOldRedis) {
		return nil, err
	}
	if err != nil {
		return nil, redisError("connect", err)
	}
	return r, nil
}

// minRedisMajor is the oldest Redis major version the store works with: the append script
// publishes with SPUBLISH, new in Redis 7.0.
const minRedisMajor = 7

// errOldRedis is returned by NewRedis for a server older than Redis 7.
var errOldRedis = errors.New("store: redis: Redis 7.0 or later is needed (sharded pub/sub)")

// checkRedisVersion refuses a server older than minRedisMajor. A server that does not say its
// version (INFO disabled) is taken as recent enough.
func checkRedisVersion(ctx context.Context, c *redis.Client) error {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		var reply redis.Error
		if errors.As(err, &reply) {
			return nil // INFO refused (renamed or disabled): nothing to check
		}
		return err
	}
	for _, line := range strings.Split(info, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:")
		if !ok {
			continue
		}
		major, _, _ := strings.Cut(v, ".")
		if n, err := strconv.Atoi(major); err == nil && n < minRedisMajor {
			return fmt.Errorf("%w; the server runs %s", errOldRedis, v)
		}
	}
	return nil
}

// NewRedisClient returns a client for the Redis named by urls, in the form
// redis://[user:password@]host:port[/db][?option=value...] (rediss:// for TLS; the options
// are go-redis's). One URL gives a client of a single server; several give a Redis Cluster
// client that starts from those nodes, with the credentials and options of the first URL.
func NewRedisClient(urls []string) (redis.UniversalClient, error) {
	switch len(urls) {
	case 0:
		return nil, errors.New("store: redis: no URL")
	case 1:
		opts, err := redis.ParseURL(urls[0])
		if err != nil {
			return nil, fmt.Errorf("store: redis: %w", err)
		}
		return redis.NewClient(opts), nil
	}
	opts, err := redis.ParseClusterURL(urls[0])
	if err != nil {
		return nil, fmt.Errorf("store: redis: %w", err)
	}
	for _, u := range urls {
		node, err := redis.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("store: redis: %w", err)
		}
		if node.DB != 0 {
			return nil, fmt.Errorf("store: redis: %s: a Redis Cluster has database 0 only", node.Addr)
		}
		if !containsString(opts.Addrs, node.Addr) {
			opts.Addrs = append(opts.Addrs, node.Addr)
		}
	}
	return redis.NewClusterClient(opts), nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Ping checks that Redis answers: the server, or every master of a Cluster. It returns an
// error wrapping ErrUnavailable when one does not.
func (r *Redis) Ping(ctx context.Context) error {
	err := r.eachServer(ctx, func(ctx context.Context, c *redis.Client) error {
		return c.Ping(ctx).Err()
	})
	if err != nil {
		return redisError("ping", err)
	}
	return nil
}

// eachServer calls fn with the client of the single server, or of each Cluster master.
func (r *Redis) eachServer(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	default:
		return r.client.Ping(ctx).Err()
	}
}

// Close closes the Redis client that the store was built with. It may be called more than
// once; calls after the first return the first one's result. The store is unusable
// afterwards: its calls return ErrUnavailable.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.client.Close() })
	return r.closeErr
}

// unavailableReplies are the prefixes of the Redis error replies that mean the data cannot be
// served at the moment, rather than that the request was wrong.
var unavailableReplies = []string{
	"CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN", "READONLY", "NOREPLICAS", "BUSY",
	"MISCONF", "OOM", "ERR max number of clients",
}

// redisError wraps an error of the Redis client with op for context and with ErrUnavailable,
// unless it is an error reply saying that the request itself was wrong (a bug, not an
// outage). The client's error stays wrapped too, so that errors.Is finds a context's error.
// redis.Nil must have been handled before.
func redisError(op string, err error) error {
	var reply redis.Error
	if errors.As(err, &reply) && !isContextError(err) {
		msg := reply.Error()
		for _, p := range unavailableReplies {
			if strings.HasPrefix(msg, p) {
				return fmt.Errorf("store: redis: %s: %w: %w", op, ErrUnavailable, err)
			}
		}
		return fmt.Errorf("store: redis: %s: %w", op, err)
	}
	return fmt.Errorf("store: redis: %s: %w: %w", op, ErrUnavailable, err)
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Key suffixes of a room. The room's key comes first: scripts take KEYS in this order.
var roomSuffixes = [...]string{"room", "history", "members", "joined", "seen",
	"acl:" + ListAdmins, "acl:" + ListBlacklist, "acl:" + ListWhitelist}

// Indexes into roomSuffixes and the result of roomKeys.
const (
	rkRoom = iota
	rkHistory
	rkMembers
	rkJoined
	rkSeen
)

// roomKey returns the key of room with the given suffix. Every key of a room starts with the
// hash tag {prefix:room:NAME}. A name may hold any character: a suffix holds no '}', so the
// last '}' of a key ends its name and no two keys coincide, and when a name holds a '}' the
// hash tag ends there for every key of the room alike.
func (r *Redis) roomKey(room, suffix string) string {
	return "{" + r.prefix + ":room:" + room + "}:" + suffix
}

// roomKeys returns every key of room, in the order of roomSuffixes.
func (r *Redis) roomKeys(room string) []string {
	keys := make([]string, len(roomSuffixes))
	for i, s := range roomSuffixes {
		keys[i] = r.roomKey(room, s)
	}
	return keys
}

// userKey returns the key of user with the given suffix, in the hash tag {prefix:user:NAME}.
func (r *Redis) userKey(user, suffix string) string {
	return "{" + r.prefix + ":user:" + user + "}:" + suffix
}

// clientKey returns the key of an MQTT client id with the given suffix, in the hash tag
// {prefix:client:ID}.
func (r *Redis) clientKey(clientID, suffix string) string {
	return "{" + r.prefix + ":client:" + clientID + "}:" + suffix
}

// run runs a script with EVALSHA, or EVAL when Redis does not have it (after a restart or a
// failover), and returns its reply, which is an array for every script of the store.
func (r *Redis) run(ctx context.Context, op string, s *redis.Script, keys []string, args ...any) ([]any, error) {
	v, err := s.Run(ctx, r.client, keys, args...).Slice()
	if err != nil {
		return nil, redisError(op, err)
	}
	return v, nil
}

// allScripts lists the scripts that NewRedis loads.
var allScripts = []*redis.Script{
	createRoomScript, deleteRoomScript,
	appendScript, rangeScript, recentScript, historyInfoScript,
	connSwapScript, connPutScript, connDropScript, connRemoveScript,
	heartbeatScript, claimScript, releaseScript, setPresenceScript, setRetainedScript,
	grantReplyScript, useReplyScript,
	joinScript, leaveScript, roomUsersScript, userSeenScript,
	listAddScript, listRemoveScript, listUsersScript, setModeScript, accessScript,
}

// intAt returns the integer at v[i], or 0 when there is none.
func intAt(v []any, i int) int64 {
	if i >= len(v) {
		return 0
	}
	n, _ := v[i].(int64)
	return n
}

// strAt returns the string at v[i], or "" when there is none.
func strAt(v []any, i int) string {
	if i >= len(v) {
		return ""
	}
	s, _ := v[i].(string)
	return s
}

// stringsOf returns the strings of v.
func stringsOf(v []any) []string {
	out := make([]string, 0, len(v))
	for _, x := range v {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Lua numbers are doubles, and Redis formats large ones in exponent notation when a script
// passes them on: limits and sizes given to scripts stay below maxScriptCount.
const maxScriptCount = 1 << 30

func clampCount(n int) int { return min(n, maxScriptCount) }

// pipelined sends the commands that fn queues in one pipeline (split by node in a Cluster)
// and returns the first error that is not redis.Nil, wrapped for op.
func (r *Redis) pipelined(ctx context.Context, op string, fn func(redis.Pipeliner)) error {
	cmds, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		fn(p)
		return nil
	})
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
			return redisError(op, e)
		}
	}
	if !errors.Is(err, redis.Nil) {
		return redisError(op, err)
	}
	return nil
}

// RedisLog adapts a slog.Logger to go-redis's logger (dial failures, pool trouble). go-redis
// has one logger per process: set it once, from main, with redis.SetLogger.
type RedisLog struct{ Logger *slog.Logger }

// Printf implements go-redis's logging interface.
func (l RedisLog) Printf(ctx context.Context, format string, v ...any) {
	l.Logger.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "redis")
}
