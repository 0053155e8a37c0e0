package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/roomq/roomq/wire"
)

// More MQTT packet types and properties the raw requester handles.
const (
	typeSubscribe = 8
	typePuback    = 4

	propCorrelationData = 0x09
	propResponseTopic   = 0x08
)

// rawRequester is a minimal MQTT v5 client that sends roomHistoryGet requests and checks their
// answers with a scan of the envelope instead of decoding it (see checkHistoryAnswer), so that
// the tool costs less CPU than the broker it measures, as rawSub does for subscribers. It joins
// the room with a SUBSCRIBE to rooms/{room} (reading a room's history needs joining it) and
// reads answers on its own replies topic. One request is outstanding at a time, sent and
// awaited on the calling goroutine.
type rawRequester struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	topic   string // $rpc/roomHistoryGet
	replies string // the response topic
	qos     byte   // of requests and of the replies subscription
	args    []byte // the request's payload
	want    int    // messages per answer

	seq    uint64 // correlation data of the last request
	nextID uint16 // packet id of the last QoS 1 request
	out    []byte // the request being encoded
	in     []byte // the packet being read
	corr   []byte // the expected correlation data
}

// newRawRequester connects, joins room and subscribes to the replies topic, both at qos; each
// request then reads the first want messages of room.
func newRawRequester(ctx context.Context, d *dialer, clientID, user, password, room string, qos byte, want int) (*rawRequester, error) {
	conn, err := rawConnect(ctx, d, clientID, user, password)
	if err != nil {
		return nil, err
	}
	args, err := json.Marshal(struct {
		Room  string `json:"room"`
		ID    uint64 `json:"id"`
		Limit int    `json:"limit"`
	}{room, 0, want})
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("encode roomHistoryGet arguments: %w", err)
	}
	q := &rawRequester{
		conn: conn, r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriterSize(conn, 4096),
		topic: wire.RPCPrefix + "roomHistoryGet", replies: "users/" + user + "/replies/" + clientID,
		qos: qos, args: args, want: want,
	}
	if err := q.subscribe(ctx, q.replies, "rooms/"+room); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%s: %w", clientID, err)
	}
	return q, nil
}

// subscribe subscribes to filters at q.qos and waits for the SUBACK granting them all.
func (q *rawRequester) subscribe(ctx context.Context, filters ...string) error {
	body := []byte{0, 1, 0} // packet id 1, no properties
	for _, f := range filters {
		body = binary.BigEndian.AppendUint16(body, uint16(len(f)))
		body = append(body, f...)
		body = append(body, q.qos)
	}
	pk := appendVBI([]byte{typeSubscribe<<4 | 2}, len(body))
	deadline := time.Now().Add(dialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = q.conn.SetDeadline(deadline)
	defer func() { _ = q.conn.SetDeadline(time.Time{}) }()
	if _, err := q.conn.Write(append(pk, body...)); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	for {
		first, body, err := q.readPacket()
		if err != nil {
			return fmt.Errorf("read SUBACK: %w", err)
		}
		if first>>4 != typeSuback {
			continue
		}
		// packet id (2), properties (VBI length + bytes), one reason code per filter
		br := &sliceReader{b: body, i: 2}
		pl, err := readVBI(br)
		if err != nil || br.i+pl+len(filters) != len(body) {
			return errors.New("bad SUBACK")
		}
		for i, code := range body[br.i+pl:] {
			if code >= 0x80 {
				return fmt.Errorf("subscribe %s: refused with 0x%02x", filters[i], code)
			}
		}
		return nil
	}
}

// historyGet sends one request and waits until ctx ends for its answer, which it checks with
// checkHistoryAnswer, and for the PUBACK of a QoS 1 request (which may come before or after
// the answer: the broker answers from another goroutine).
func (q *rawRequester) historyGet(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		_ = q.conn.SetReadDeadline(d)
	}
	q.seq++
	q.corr = strconv.AppendUint(q.corr[:0], q.seq, 10)
	if err := q.sendRequest(); err != nil {
		return err
	}
	acked, answered := q.qos == 0, false
	for !acked || !answered {
		first, body, err := q.readPacket()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("answer %s: %w", q.corr, ctx.Err())
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// The read deadline is ctx's: it may pass just before ctx ends.
				return fmt.Errorf("answer %s: %w", q.corr, context.DeadlineExceeded)
			}
			return fmt.Errorf("answer %s: %w", q.corr, err)
		}
		switch first >> 4 {
		case typePuback:
			if len(body) < 2 || binary.BigEndian.Uint16(body) != q.nextID {
				continue // the PUBACK of an earlier request
			}
			if len(body) >= 3 && body[2] >= 0x80 {
				return fmt.Errorf("request: PUBACK 0x%02x", body[2])
			}
			acked = true
		case typePublish:
			pub, err := parseAnswer(body, (first>>1)&3)
			if err != nil {
				return err
			}
			if pub.qos > 0 {
				if err := q.puback(pub.id); err != nil {
					return err
				}
			}
			if pub.topic != q.replies || !bytes.Equal(pub.corr, q.corr) {
				continue // a room message, or a late answer to an earlier request
			}
			if err := checkHistoryAnswer(pub.payload, q.want); err != nil {
				return err
			}
			answered = true
		case typeDisconnect:
			return errors.New("server sent DISCONNECT")
		}
	}
	return nil
}

// sendRequest writes the PUBLISH of the request with correlation data q.corr.
func (q *rawRequester) sendRequest() error {
	props := 3 + len(q.replies) + 3 + len(q.corr)
	n := 2 + len(q.topic) + vbiLen(props) + props + len(q.args)
	if q.qos > 0 {
		n += 2
	}
	b := appendVBI(append(q.out[:0], typePublish<<4|q.qos<<1), n)
	b = binary.BigEndian.AppendUint16(b, uint16(len(q.topic)))
	b = append(b, q.topic...)
	if q.qos > 0 {
		q.nextID = q.nextID%0xffff + 1 // never 0 [MQTT-2.2.1-3]
		b = binary.BigEndian.AppendUint16(b, q.nextID)
	}
	b = appendVBI(b, props)
	b = append(b, propResponseTopic)
	b = binary.BigEndian.AppendUint16(b, uint16(len(q.replies)))
	b = append(b, q.replies...)
	b = append(b, propCorrelationData)
	b = binary.BigEndian.AppendUint16(b, uint16(len(q.corr)))
	b = append(b, q.corr...)
	b = append(b, q.args...)
	q.out = b
	if _, err := q.w.Write(b); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	if err := q.w.Flush(); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	return nil
}

// puback acknowledges the QoS 1 PUBLISH id; it is sent with the next request.
func (q *rawRequester) puback(id uint16) error {
	if _, err := q.w.Write([]byte{typePuback << 4, 2, byte(id >> 8), byte(id)}); err != nil {
		return fmt.Errorf("send PUBACK: %w", err)
	}
	return nil
}

// readPacket reads one packet: its first byte and its body, valid until the next call.
func (q *rawRequester) readPacket() (byte, []byte, error) {
	first, err := q.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := readVBI(q.r)
	if err != nil {
		return 0, nil, err
	}
	if n > maxRawPacket {
		return 0, nil, fmt.Errorf("packet of %d bytes", n)
	}
	if cap(q.in) < n {
		q.in = make([]byte, n)
	}
	body := q.in[:n]
	if _, err := io.ReadFull(q.r, body); err != nil {
		return 0, nil, err
	}
	return first, body, nil
}

// close sends DISCONNECT (giving up after closeTimeout) and closes the connection.
func (q *rawRequester) close() {
	_ = q.conn.SetWriteDeadline(time.Now().Add(closeTimeout))
	_, _ = q.w.Write([]byte{typeDisconnect << 4, 0})
	_ = q.w.Flush()
	_ = q.conn.Close()
}

// rawPublish is the part of a received PUBLISH the requester reads.
type rawPublish struct {
	topic   string
	qos     byte
	id      uint16
	corr    []byte
	payload []byte
}

// parseAnswer reads the topic, packet id, correlation data and payload of the body of a v5
// PUBLISH of QoS qos; corr and payload alias body.
func parseAnswer(body []byte, qos byte) (rawPublish, error) {
	bad := errors.New("bad PUBLISH")
	p := rawPublish{qos: qos}
	if len(body) < 2 {
		return p, bad
	}
	i := 2 + int(binary.BigEndian.Uint16(body))
	if i > len(body) {
		return p, bad
	}
	p.topic = string(body[2:i])
	if qos > 0 {
		if len(body) < i+2 {
			return p, bad
		}
		p.id = binary.BigEndian.Uint16(body[i:])
		i += 2
	}
	br := &sliceReader{b: body, i: i}
	pl, err := readVBI(br)
	if err != nil || br.i+pl > len(body) {
		return p, bad
	}
	props, end := body[br.i:br.i+pl], br.i+pl
	for j := 0; j < len(props); {
		id := props[j]
		j++
		n, err := propertyLen(id, props[j:])
		if err != nil || j+n > len(props) {
			return p, fmt.Errorf("bad PUBLISH property 0x%02x", id)
		}
		if id == propCorrelationData {
			p.corr = props[j+2 : j+n]
		}
		j += n
	}
	p.payload = body[end:]
	return p, nil
}

// propertyLen returns the length of the value of the MQTT v5 property id at the start of b.
func propertyLen(id byte, b []byte) (int, error) {
	u16 := func(off int) (int, error) {
		if len(b) < off+2 {
			return 0, io.ErrUnexpectedEOF
		}
		return off + 2 + int(binary.BigEndian.Uint16(b[off:])), nil
	}
	switch id {
	case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2a: // byte
		return 1, nil
	case 0x13, 0x21, 0x22, 0x23: // two-byte integer
		return 2, nil
	case 0x02, 0x11, 0x18, 0x27: // four-byte integer
		return 4, nil
	case 0x0b: // variable byte integer
		br := &sliceReader{b: b}
		if _, err := readVBI(br); err != nil {
			return 0, err
		}
		return br.i, nil
	case 0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1a, 0x1c, 0x1f: // string or binary data
		return u16(0)
	case 0x26: // string pair
		k, err := u16(0)
		if err != nil {
			return 0, err
		}
		return u16(k)
	}
	return 0, errors.New("unknown property")
}

// appendVBI appends n as an MQTT variable byte integer.
func appendVBI(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

// vbiLen returns the length of n as an MQTT variable byte integer.
func vbiLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// answerPrefix starts the answer of a successful roomHistoryGet, as the broker writes it
// (compact JSON, "result" first), and messagePrefix every message in it (id first).
const (
	answerPrefix  = `{"result":[`
	messagePrefix = `{"id":`
)

// checkHistoryAnswer checks the payload of a roomHistoryGet answer without decoding it: a
// success envelope {"result":[...]} holding exactly want messages, each a JSON object whose
// first key is its id, the ids ascending, the brackets of every object and array balanced, every
// string closed, nothing after the envelope. It relies on the compact form the broker writes
// (docs/protocol.md; AppendJSON in package rooms): an answer in another form fails the check
// rather than passing it. An error answer returns its code and message.
func checkHistoryAnswer(payload []byte, want int) error {
	if !bytes.HasPrefix(payload, []byte(answerPrefix)) {
		var env struct {
			Error *wire.Error `json:"error"`
		}
		if json.Unmarshal(payload, &env) == nil && env.Error != nil {
			return fmt.Errorf("roomHistoryGet: %s: %s", env.Error.Code, env.Error.Message)
		}
		return fmt.Errorf("roomHistoryGet: unexpected answer %.64q", payload)
	}
	p, i, n := payload, len(answerPrefix), 0
	var last uint64
	if i < len(p) && p[i] == ']' {
		i++
	} else {
		for {
			if !bytes.HasPrefix(p[i:], []byte(messagePrefix)) {
				return fmt.Errorf("roomHistoryGet: message %d does not start with its id", n+1)
			}
			i += len(messagePrefix)
			start := i
			for i < len(p) && p[i] >= '0' && p[i] <= '9' {
				i++
			}
			id, err := strconv.ParseUint(string(p[start:i]), 10, 64)
			if err != nil {
				return fmt.Errorf("roomHistoryGet: id of message %d: %w", n+1, err)
			}
			if n > 0 && id <= last {
				return fmt.Errorf("roomHistoryGet: id %d after id %d", id, last)
			}
			last, n = id, n+1
			if n > want {
				return fmt.Errorf("roomHistoryGet returned more than %d messages", want)
			}
			if i, err = skipObject(p, i); err != nil {
				return fmt.Errorf("roomHistoryGet: message %d: %w", n, err)
			}
			if i >= len(p) {
				return errors.New("roomHistoryGet: answer cut short")
			}
			if p[i] == ']' {
				i++
				break
			}
			if p[i] != ',' {
				return fmt.Errorf("roomHistoryGet: %q after message %d", p[i], n)
			}
			i++
		}
	}
	if string(p[i:]) != "}" {
		return fmt.Errorf("roomHistoryGet: %.32q after the messages", p[i:])
	}
	if n != want {
		return fmt.Errorf("roomHistoryGet returned %d messages, want %d", n, want)
	}
	return nil
}

// skipObject returns the index after the end of the JSON object p[i:] is inside of: it pairs
// the brackets of the objects and arrays nested in it and skips strings (escapes included).
func skipObject(p []byte, i int) (int, error) {
	// open holds one bit per open bracket, innermost lowest: 1 for an object.
	open, depth := uint64(1), 1
	for ; i < len(p); i++ {
		switch c := p[i]; c {
		case '"':
			for {
				j := bytes.IndexByte(p[i+1:], '"')
				if j < 0 {
					return 0, errors.New("unterminated string")
				}
				i += 1 + j
				backslashes := 0
				for k := i - 1; p[k] == '\\'; k-- {
					backslashes++
				}
				if backslashes%2 == 0 {
					break
				}
			}
		case '{', '[':
			if depth == 64 {
				return 0, errors.New("nested too deeply")
			}
			open, depth = open<<1, depth+1
			if c == '{' {
				open |= 1
			}
		case '}', ']':
			if (open&1 == 1) != (c == '}') {
				return 0, fmt.Errorf("mismatched %q", c)
			}
			open, depth = open>>1, depth-1
			if depth == 0 {
				return i + 1, nil
			}
		}
	}
	return 0, errors.New("unbalanced brackets")
}
