package rooms

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/roomq/roomq/store"
)

// Message is a room message as delivered: the stored message with its room, the history epoch
// and the payload subscribers receive.
type Message struct {
	store.Message
	// Room is the room the message belongs to.
	Room string
	// Epoch is the room history's epoch when the message was delivered.
	Epoch string
	// Origin is the client id that published the message on this instance, empty for replayed
	// history and for messages from other instances or the system.
	Origin string

	delivered []byte
	history   json.RawMessage

	cacheOnce sync.Once
	cache     any
}

// Cached returns what build returns, calling build once per message: what a transport
// derives from the message for every one of its deliveries (a topic, encoded properties), to
// be shared by them, read-only.
func (m *Message) Cached(build func() any) any {
	m.cacheOnce.Do(func() { m.cache = build() })
	return m.cache
}

// NewMessage wraps a stored message of room for delivery, computing its payloads once.
func NewMessage(room, epoch, origin string, m store.Message) *Message {
	msg := &Message{Message: m, Room: room, Epoch: epoch, Origin: origin}
	msg.history = AppendJSON(make([]byte, 0, JSONSizeHint(m)), m)
	if m.Binary {
		msg.delivered = m.Payload
	} else {
		msg.delivered = msg.history
	}
	return msg
}

// JSONSizeHint returns the length of m's JSON form (see AppendJSON) for an author that needs no
// escaping; a buffer of that size is usually large enough.
func JSONSizeHint(m store.Message) int {
	n := len(m.Payload)
	if m.Binary {
		n = base64.StdEncoding.EncodedLen(n) + len(`,"binary":""}`)
	}
	// {"id":,"author":"","timestamp":} with a 20-digit id and timestamp.
	return n + len(m.Author) + 72
}

// AppendJSON appends the JSON form of the stored message m, as Message.JSON returns it, to dst
// and returns the extended buffer: the object with the keys id, author and timestamp first,
// then the members of m's JSON object, or "binary" with the base64 of a binary message's
// bytes. A text or JSON message's payload must be a compact JSON object, as the checkers store
// it. The result is valid, compact JSON, so that a list of messages can be assembled without
// encoding or checking them again.
func AppendJSON(dst []byte, m store.Message) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, m.ID, 10)
	dst = append(dst, `,"author":`...)
	dst = appendJSONString(dst, m.Author)
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, m.Timestamp, 10)
	if m.Binary {
		// "binary":"BASE64": the standard alphabet needs no escaping in a JSON string.
		dst = append(dst, `,"binary":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, m.Payload)
		return append(dst, `"}`...)
	}
	return appendRest(dst, m.Payload)
}

// appendJSONString appends s as a JSON string, escaped as encoding/json escapes it (HTML
// characters included), to dst.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// Payload returns the bytes published to subscribers: the JSON object with id, author and
// timestamp added, or the unchanged bytes of a binary message.
func (m *Message) Payload() []byte { return m.delivered }

// JSON returns the message as it appears inside JSON (RPC results, history): the delivered
// object, or {"binary": base64} with id, author and timestamp for a binary message.
func (m *Message) JSON() json.RawMessage { return m.history }

// EnrichDirect returns the JSON object content (as the text checker stores it) with the keys
// author and timestamp prepended: the payload of a delivered direct message.
func EnrichDirect(content []byte, author string, timestamp int64) []byte {
	a, _ := json.Marshal(author)
	out := make([]byte, 0, len(content)+len(a)+40)
	out = append(out, `{"author":`...)
	out = append(out, a...)
	out = append(out, `,"timestamp":`...)
	out = strconv.AppendInt(out, timestamp, 10)
	return appendRest(out, content)
}

// appendRest appends the members of the compact JSON object obj to out, which holds an object
// opened and given members already, and closes it.
func appendRest(out, obj []byte) []byte {
	if len(obj) > 2 { // not "{}"
		out = append(out, ',')
		return append(out, obj[1:]...)
	}
	return append(out, '}')
}

// MessageList is a run of stored messages of one room, ascending, that encodes as the JSON
// array of their JSON forms (see AppendJSON): a history read. It encodes straight from the
// stored messages into one buffer, without wrapping each in a Message.
type MessageList []store.Message

// JSONSizeHint returns the usual length of the list's JSON array (see JSONSizeHint).
func (l MessageList) JSONSizeHint() int {
	n := 2
	for _, m := range l {
		n += JSONSizeHint(m) + 1
	}
	return n
}

// AppendJSON appends the list's JSON array to dst and returns the extended buffer.
func (l MessageList) AppendJSON(dst []byte) []byte {
	dst = append(dst, '[')
	for i, m := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSON(dst, m)
	}
	return append(dst, ']')
}

// MarshalJSON implements json.Marshaler with AppendJSON.
func (l MessageList) MarshalJSON() ([]byte, error) {
	return l.AppendJSON(make([]byte, 0, l.JSONSizeHint())), nil
}
