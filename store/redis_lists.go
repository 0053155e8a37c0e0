package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Access lists in Redis: each list is a set, and the whitelist-only mode is the field wl of a
// settings hash: the room's for a room scope, {P:user:NAME}:settings for a user scope. Each
// call is one script in the scope's slot. The scripts take the settings hash and a flag
// ARGV[1] that is '1' when the settings hash must exist (a room scope); when it does not, they
// return {0}.

// listAddScript adds users to a list. KEYS: the list, the settings hash. ARGV: must exist,
// limit, users... Returns {1} when the list would exceed the limit, else {2, added users...}.
var listAddScript = redis.NewScript(`
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
	return {0}
end
local limit = tonumber(ARGV[2])
local added, seen = {}, {}
for i = 3, #ARGV do
	local u = ARGV[i]
	if not seen[u] and redis.call('SISMEMBER', KEYS[1], u) == 0 then
		seen[u] = true
		added[#added + 1] = u
	end
end
if limit > 0 and redis.call('SCARD', KEYS[1]) + #added > limit then
	return {1}
end
for i = 1, #added, 1000 do
	redis.call('SADD', KEYS[1], unpack(added, i, math.min(i + 999, #added)))
end
table.insert(added, 1, 2)
return added
`)

// listRemoveScript removes users from a list. KEYS: the list, the settings hash. ARGV: must
// exist, users... Returns {2, removed users...}.
var listRemoveScript = redis.NewScript(`
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
	return {0}
end
local removed = {2}
for i = 2, #ARGV do
	if redis.call('SREM', KEYS[1], ARGV[i]) == 1 then
		removed[#removed + 1] = ARGV[i]
	end
end
return removed
`)

// listUsersScript reads a list. KEYS: the list, the settings hash. ARGV: must exist. Returns
// {2, users...}.
var listUsersScript = redis.NewScript(`
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
	return {0}
end
local users = redis.call('SMEMBERS', KEYS[1])
table.insert(users, 1, 2)
return users
`)

// setModeScript sets the whitelist-only mode. KEYS: the settings hash. ARGV: must exist, the
// mode ('1' or '0'). Returns {2, changed (0 or 1)}.
var setModeScript = redis.NewScript(`
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
	return {0}
end
if (redis.call('HGET', KEYS[1], 'wl') == '1') == (ARGV[2] == '1') then
	return {2, 0}
end
redis.call('HSET', KEYS[1], 'wl', ARGV[2])
return {2, 1}
`)

// accessScript reads the mode and the lists that hold a user. KEYS: the settings hash, the
// lists. ARGV: must exist, user. Returns {2, whether each list holds the user (0 or 1)...,
// field, value pairs of the settings hash...}.
var accessScript = redis.NewScript(`
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
	return {0}
end
local out = {2}
for i = 2, #KEYS do
	out[#out + 1] = redis.call('SISMEMBER', KEYS[i], ARGV[2])
end
local settings = redis.call('HGETALL', KEYS[1])
for i = 1, #settings do
	out[#out + 1] = settings[i]
end
return out
`)

// scopeSettings returns the key of the settings hash of a scope, and the must-exist flag of
// the list scripts.
func (r *Redis) scopeSettings(scope Scope) (string, string) {
	if scope.Room != "" {
		return r.roomKey(scope.Room, roomSuffixes[rkRoom]), "1"
	}
	return r.userKey(scope.User, "settings"), "0"
}

// listKey returns the key of a list of a scope.
func (r *Redis) listKey(scope Scope, list string) string {
	if scope.Room != "" {
		return r.roomKey(scope.Room, "acl:"+list)
	}
	return r.userKey(scope.User, "acl:"+list)
}

// runList runs a list script for scope and returns its reply after the status, or ErrNoRoom.
func (r *Redis) runList(ctx context.Context, op string, s *redis.Script, scope Scope, list string, args ...any) ([]any, error) {
	settings, mustExist := r.scopeSettings(scope)
	keys := []string{settings}
	if list != "" {
		keys = []string{r.listKey(scope, list), settings}
	}
	v, err := r.run(ctx, op, s, keys, append([]any{mustExist}, args...)...)
	if err != nil {
		return nil, err
	}
	if intAt(v, 0) == 0 {
		return nil, noRoom(op, scope.Room)
	}
	return v, nil
}

// ListAdd adds users to a list; see AccessLists. It is one script.
func (r *Redis) ListAdd(ctx context.Context, scope Scope, list string, users []string, limit int) ([]string, error) {
	const op = "add to list"
	if err := checkList(scope, list, op); err != nil {
		return nil, err
	}
	args := make([]any, 0, 1+len(users))
	args = append(args, clampCount(max(limit, 0)))
	for _, u := range users {
		args = append(args, u)
	}
	v, err := r.runList(ctx, op, listAddScript, scope, list, args...)
	if err != nil {
		return nil, err
	}
	if intAt(v, 0) == 1 {
		return nil, listLimit(list, limit)
	}
	if len(v) == 1 {
		return nil, nil
	}
	return stringsOf(v[1:]), nil
}

// ListRemove removes users from a list; see AccessLists. It is one script.
func (r *Redis) ListRemove(ctx context.Context, scope Scope, list string, users []string) ([]string, error) {
	const op = "remove from list"
	if err := checkList(scope, list, op); err != nil {
		return nil, err
	}
	args := make([]any, len(users))
	for i, u := range users {
		args[i] = u
	}
	v, err := r.runList(ctx, op, listRemoveScript, scope, list, args...)
	if err != nil {
		return nil, err
	}
	if len(v) == 1 {
		return nil, nil
	}
	return stringsOf(v[1:]), nil
}

// ListUsers returns the users on a list, sorted; see AccessLists.
func (r *Redis) ListUsers(ctx context.Context, scope Scope, list string) ([]string, error) {
	const op = "list users"
	if err := checkList(scope, list, op); err != nil {
		return nil, err
	}
	v, err := r.runList(ctx, op, listUsersScript, scope, list)
	if err != nil {
		return nil, err
	}
	users := stringsOf(v[1:])
	slices.Sort(users)
	return users, nil
}

// SetWhitelistOnly sets the mode of a scope; see AccessLists. It is one script.
func (r *Redis) SetWhitelistOnly(ctx context.Context, scope Scope, on bool) (bool, error) {
	v, err := r.runList(ctx, "set whitelist mode", setModeScript, scope, "", boolField(on))
	if err != nil {
		return false, err
	}
	return intAt(v, 1) == 1, nil
}

// Access returns the mode of a scope and the lists that hold user, in one script; see
// AccessLists.
func (r *Redis) Access(ctx context.Context, scope Scope, user string) (Room, bool, Listed, error) {
	const op = "access"
	settings, mustExist := r.scopeSettings(scope)
	lists := []string{ListBlacklist, ListWhitelist}
	if scope.Room != "" {
		lists = append(lists, ListAdmins)
	}
	keys := []string{settings}
	for _, l := range lists {
		keys = append(keys, r.listKey(scope, l))
	}
	v, err := r.run(ctx, op, accessScript, keys, mustExist, user)
	if err != nil {
		return Room{}, false, Listed{}, err
	}
	if intAt(v, 0) == 0 {
		return Room{}, false, Listed{}, noRoom(op, scope.Room)
	}
	listed := Listed{Blacklisted: intAt(v, 1) == 1, Whitelisted: intAt(v, 2) == 1}
	fields := v[1+len(lists):]
	var room Room
	if scope.Room != "" {
		listed.Admin = intAt(v, 3) == 1
		room = decodeRoomPairs(scope.Room, fields)
		return room, room.WhitelistOnly, listed, nil
	}
	return room, decodeRoomPairs("", fields).WhitelistOnly, listed, nil
}

func listLimit(list string, limit int) error {
	return fmt.Errorf("store: add to %s: %w (%d users at most)", list, ErrListLimit, limit)
}
