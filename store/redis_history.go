package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// A room's history is a Redis list of encoded messages in id order, the newest last, and the
// room's settings hash counts the last id. The ids of the stored messages are contiguous, so
// the first one is last - LLEN + 1 and the scripts find an id range by arithmetic.

// appendScript appends a message, trims the history and publishes the message on the room's
// feed channel (see redis_feed.go) in a feed frame. KEYS: the room's settings hash and history
// list. ARGV: the history's maximum size (at least 1), the encoded message, the room's feed
// channel, which has the room's hash tag: a Cluster accepts SPUBLISH from a script only for a
// channel in the slot of the script's keys. Returns {id}, or {0} when the room does not exist.
// '%.0f' writes an id in full where tostring would switch to exponent notation.
var appendScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return {0}
end
local id = redis.call('HINCRBY', KEYS[1], 'last', 1)
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[1]), -1)
local epoch = redis.call('HGET', KEYS[1], 'epoch') or ''
redis.call('SPUBLISH', ARGV[3], string.format('%.0f:%d:', id, #epoch) .. epoch .. ARGV[2])
return {id}
`)

// rangeScript reads the messages after an id. KEYS: the room's settings hash and history
// list. ARGV: the id after which to start, the largest number of messages. Returns {} when
// the room does not exist, else {id of the first message returned, messages...}.
var rangeScript = redis.NewScript(`
local last = redis.call('HGET', KEYS[1], 'last')
if not last then
	return {}
end
last = tonumber(last)
local n = redis.call('LLEN', KEYS[2])
local after, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if limit < 1 or n == 0 or after >= last then
	return {0}
end
local first = last - n + 1
local start = math.max(after + 1, first)
local count = math.min(limit, last - start + 1)
local msgs = redis.call('LRANGE', KEYS[2], start - first, start - first + count - 1)
table.insert(msgs, 1, start)
return msgs
`)

// recentScript reads the newest messages. KEYS: the room's settings hash and history list.
// ARGV: the largest number of messages (at least 1). Returns {} when the room does not
// exist, else {id of the first message returned, messages...}.
var recentScript = redis.NewScript(`
local last = redis.call('HGET', KEYS[1], 'last')
if not last then
	return {}
end
local msgs = redis.call('LRANGE', KEYS[2], -tonumber(ARGV[1]), -1)
table.insert(msgs, 1, tonumber(last) - #msgs + 1)
return msgs
`)

// historyInfoScript describes a history. KEYS: the room's settings hash and history list.
// Returns {} when the room does not exist, else {last id, size, epoch}.
var historyInfoScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'last', 'epoch')
if not v[1] then
	return {}
end
return {tonumber(v[1]), redis.call('LLEN', KEYS[2]), v[2] or ''}
`)

// historyKeys returns the keys that the history scripts take.
func (r *Redis) historyKeys(room string) []string {
	return []string{r.roomKey(room, roomSuffixes[rkRoom]), r.roomKey(room, roomSuffixes[rkHistory])}
}

// Append gives m the room's next id, stores it, drops the oldest messages so that at most
// maxSize remain and publishes it to the room's feed subscribers (SubscribeRoom), in one
// script; a maxSize below 1 counts as 1. It returns the stored message, whose payload shares
// no memory with m's, or ErrNoRoom.
func (r *Redis) Append(ctx context.Context, room string, m Message, maxSize int) (Message, error) {
	const op = "append"
	maxSize = clampCount(max(maxSize, 1))
	v, err := r.run(ctx, op, appendScript, r.historyKeys(room), maxSize, encodeMessage(m), r.feedChannel(room))
	if err != nil {
		return Message{}, err
	}
	id := intAt(v, 0)
	if id <= 0 {
		return Message{}, noRoom("append to", room)
	}
	m.ID = uint64(id)
	m.Payload = clonePayload(m.Payload)
	return m, nil
}

// AppendBatch appends ms in order with one pipeline of append scripts: one round trip, each
// message atomic (ids are consecutive unless another instance appends in between).
func (r *Redis) AppendBatch(ctx context.Context, room string, ms []Message, maxSize int) ([]Message, error) {
	const op = "append"
	if len(ms) == 1 {
		m, err := r.Append(ctx, room, ms[0], maxSize)
		if err != nil {
			return nil, err
		}
		return []Message{m}, nil
	}
	maxSize = clampCount(max(maxSize, 1))
	keys, channel := r.historyKeys(room), r.feedChannel(room)
	var cmds []*redis.Cmd
	for attempt := 0; ; attempt++ {
		cmds = make([]*redis.Cmd, len(ms))
		_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, m := range ms {
				cmds[i] = appendScript.EvalSha(ctx, p, keys, maxSize, encodeMessage(m), channel)
			}
			return nil
		})
		if err == nil || attempt > 0 || !redis.HasErrorPrefix(cmds[0].Err(), "NOSCRIPT") {
			break
		}
		// Redis lost its scripts (a restart): nothing was appended; load it and try again.
		if err := appendScript.Load(ctx, r.client).Err(); err != nil {
			return nil, redisError(op, err)
		}
	}
	out := make([]Message, 0, len(ms))
	for i, cmd := range cmds {
		v, err := cmd.Slice()
		if err != nil {
			return out, redisError(op, err)
		}
		id := intAt(v, 0)
		if id <= 0 {
			return out, noRoom("append to", room)
		}
		m := ms[i]
		m.ID = uint64(id)
		m.Payload = clonePayload(m.Payload)
		out = append(out, m)
	}
	return out, nil
}

// Range returns the stored messages with an id greater than afterID, ascending, at most limit
// of them; when messages after afterID have left the history it starts at the oldest stored
// one. It returns an empty slice when limit is below 1, and ErrNoRoom for a room that does not
// exist.
func (r *Redis) Range(ctx context.Context, room string, afterID uint64, limit int) ([]Message, error) {
	const op = "range"
	if limit < 1 {
		limit = 0
	}
	v, err := r.run(ctx, op, rangeScript, r.historyKeys(room),
		strconv.FormatUint(afterID, 10), clampCount(limit))
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, noRoom(op, room)
	}
	return decodeMessages(op, room, v)
}

// Recent returns the newest limit stored messages, ascending. It returns an empty slice when
// limit is below 1, and ErrNoRoom for a room that does not exist.
func (r *Redis) Recent(ctx context.Context, room string, limit int) ([]Message, error) {
	const op = "recent"
	if limit < 1 {
		// Still ask Redis, for ErrNoRoom.
		if _, err := r.HistoryInfo(ctx, room); err != nil {
			return nil, err
		}
		return []Message{}, nil
	}
	v, err := r.run(ctx, op, recentScript, r.historyKeys(room), clampCount(limit))
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, noRoom(op, room)
	}
	return decodeMessages(op, room, v)
}

// HistoryInfo describes a room's history, or returns ErrNoRoom.
func (r *Redis) HistoryInfo(ctx context.Context, room string) (HistoryInfo, error) {
	const op = "history info"
	v, err := r.run(ctx, op, historyInfoScript, r.historyKeys(room))
	if err != nil {
		return HistoryInfo{}, err
	}
	if len(v) == 0 {
		return HistoryInfo{}, noRoom(op, room)
	}
	info := HistoryInfo{LastID: uint64(intAt(v, 0)), Size: int(intAt(v, 1)), Epoch: strAt(v, 2)}
	if info.Size > 0 {
		info.FirstID = info.LastID - uint64(info.Size) + 1
	}
	return info, nil
}

// Stored messages are encoded as: a version byte (1), a flags byte (bit 0: Binary, bit 1:
// the payload is nil, bit 2: the message has an origin), the timestamp as a varint, the
// author's length as a uvarint, the author, with bit 2 the origin broker's length as a
// uvarint, the origin broker and the origin id as a uvarint, and the payload to the end.
const (
	messageVersion    = 1
	messageBinary     = 1 << 0
	messageNilPayload = 1 << 1
	messageOrigin     = 1 << 2
)

var errBadMessage = errors.New("malformed stored message")

// encodeMessage returns the stored form of m, without its id.
func encodeMessage(m Message) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64*2+len(m.Author)+len(m.Payload))
	var flags byte
	if m.Binary {
		flags |= messageBinary
	}
	if m.Payload == nil {
		flags |= messageNilPayload
	}
	b = append(b, messageVersion, flags)
	b = binary.AppendVarint(b, m.Timestamp)
	b = binary.AppendUvarint(b, uint64(len(m.Author)))
	b = append(b, m.Author...)
	if m.OriginBroker != "" {
		b[1] |= messageOrigin
		b = binary.AppendUvarint(b, uint64(len(m.OriginBroker)))
		b = append(b, m.OriginBroker...)
		b = binary.AppendUvarint(b, m.OriginID)
	}
	return append(b, m.Payload...)
}

// decodeMessage decodes the stored form of a message. Its payload is a slice of s copied
// into buf, which it returns grown.
func decodeMessage(s string, buf []byte) (Message, []byte, error) {
	if len(s) < 2 || s[0] != messageVersion {
		return Message{}, buf, errBadMessage
	}
	flags := s[1]
	rest := s[2:]
	ts, n := varintString(rest)
	if n <= 0 {
		return Message{}, buf, errBadMessage
	}
	rest = rest[n:]
	alen, n := uvarintString(rest)
	if n <= 0 || alen > uint64(len(rest)-n) {
		return Message{}, buf, errBadMessage
	}
	rest = rest[n:]
	m := Message{
		Author:    rest[:alen],
		Timestamp: ts,
		Binary:    flags&messageBinary != 0,
	}
	rest = rest[alen:]
	if flags&messageOrigin != 0 {
		olen, n := uvarintString(rest)
		if n <= 0 || olen > uint64(len(rest)-n) {
			return Message{}, buf, errBadMessage
		}
		rest = rest[n:]
		m.OriginBroker = rest[:olen]
		rest = rest[olen:]
		if m.OriginID, n = uvarintString(rest); n <= 0 {
			return Message{}, buf, errBadMessage
		}
		rest = rest[n:]
	}
	if flags&messageNilPayload == 0 {
		from := len(buf)
		buf = append(buf, rest...)
		if buf == nil {
			buf = []byte{} // an empty payload is not nil
		}
		m.Payload = buf[from:len(buf):len(buf)]
	}
	return m, buf, nil
}

// uvarintString is binary.Uvarint for a string.
func uvarintString(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -(i + 1) // overflow
			}
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// varintString is binary.Varint for a string.
func varintString(s string) (int64, int) {
	ux, n := uvarintString(s)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, n
}

// decodeMessages decodes a reply of rangeScript or recentScript: the id of the first message,
// then the messages. All their payloads share one new allocation, each capped at its own
// length so that appending to one cannot write over the next.
func decodeMessages(op, room string, v []any) ([]Message, error) {
	entries := v[1:]
	msgs := make([]Message, len(entries))
	if len(entries) == 0 {
		return msgs, nil
	}
	first := uint64(intAt(v, 0))
	total := 0
	for _, e := range entries {
		s, _ := e.(string)
		total += len(s)
	}
	buf := make([]byte, 0, total)
	for i, e := range entries {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("store: redis: %s %q: %w", op, room, errBadMessage)
		}
		var err error
		msgs[i], buf, err = decodeMessage(s, buf)
		if err != nil {
			return nil, fmt.Errorf("store: redis: %s %q: message %d: %w", op, room, first+uint64(i), err)
		}
		msgs[i].ID = first + uint64(i)
	}
	return msgs, nil
}
