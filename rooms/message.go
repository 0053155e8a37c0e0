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
	if m.Binary {
		msg.delivered = m.Payload
		// {"binary":"BASE64"}: the standard alphabet needs no escaping in a JSON string.
		obj := make([]byte, 0, base64.StdEncoding.EncodedLen(len(m.Payload))+14)
		obj = append(obj, `{"binary":"`...)
		obj = base64.StdEncoding.AppendEncode(obj, m.Payload)
		obj = append(obj, `"}`...)
		msg.history = enrich(obj, m)
	} else {
		msg.delivered = enrich(m.Payload, m)
		msg.history = msg.delivered
	}
	return msg
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

// enrich returns the JSON object obj with the keys id, author and timestamp of m prepended.
// obj must be a compact JSON object, as the checkers store it.
func enrich(obj []byte, m store.Message) []byte {
	author, _ := json.Marshal(m.Author)
	out := make([]byte, 0, len(obj)+len(author)+64)
	out = append(out, `{"id":`...)
	out = strconv.AppendUint(out, m.ID, 10)
	out = append(out, `,"author":`...)
	out = append(out, author...)
	out = append(out, `,"timestamp":`...)
	out = strconv.AppendInt(out, m.Timestamp, 10)
	return appendRest(out, obj)
}
