package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
)

// historyAnswer returns the answer the broker gives to a read of the messages with ids, each
// a binary message as the tool posts them.
func historyAnswer(ids ...uint64) string {
	msgs := make(rooms.MessageList, len(ids))
	for i, id := range ids {
		msgs[i] = store.Message{ID: id, Author: "bench-prefill", Timestamp: 1732300000000, Binary: true, Payload: []byte("\x00{\"}[\\")}
	}
	return `{"result":` + string(msgs.AppendJSON(nil)) + `}`
}

// The scan of roomHistoryGet answers accepts exactly the answers the broker gives to a good
// read, and refuses short, long, unordered, malformed and error answers.
func TestCheckHistoryAnswer(t *testing.T) {
	good := historyAnswer(4, 5, 6)
	for _, tc := range []struct {
		name, payload string
		want          int
		err           string // "" for none, "*" for any, else a part of the error
	}{
		{"good", good, 3, ""},
		{"good, ids with gaps", historyAnswer(1, 7, 100000000000), 3, ""},
		{"good, strings with escapes and brackets", `{"result":[{"id":1,"author":"a\"}]\\","x":{"y":["]}",{}]}},{"id":2,"s":"\\\\"}]}`, 2, ""},
		{"good, empty", `{"result":[]}`, 0, ""},
		{"short", historyAnswer(4, 5), 3, "returned 2 messages, want 3"},
		{"empty", `{"result":[]}`, 3, "returned 0 messages, want 3"},
		{"long", historyAnswer(4, 5, 6, 7), 3, "more than 3"},
		{"ids out of order", historyAnswer(4, 6, 5), 3, "id 5 after id 6"},
		{"id repeated", historyAnswer(4, 4, 5), 3, "id 4 after id 4"},
		{"error answer", `{"error":{"code":"notJoined","message":"join the room first"}}`, 3, "notJoined: join the room first"},
		{"not an envelope", `[1,2,3]`, 3, "unexpected answer"},
		{"message without id first", `{"result":[{"author":"a","id":1}]}`, 1, "does not start with its id"},
		{"id not a number", `{"result":[{"id":"1"}]}`, 1, "id of message 1"},
		{"cut short", good[:len(good)-20], 3, "*"},
		{"unterminated string", `{"result":[{"id":1,"a":"x}]}`, 1, "unterminated string"},
		{"mismatched brackets", `{"result":[{"id":1,"a":[}]}`, 1, "mismatched"},
		{"garbage after", good + "x", 3, "after the messages"},
		{"missing closer", good[:len(good)-1], 3, "after the messages"},
		{"bad separator", strings.Replace(good, `},{`, `}{`, 1), 3, "after message 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkHistoryAnswer([]byte(tc.payload), tc.want)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("checkHistoryAnswer(%s) = %v, want nil", tc.payload, err)
			case tc.err == "*" && err == nil:
				t.Errorf("checkHistoryAnswer(%s) = nil, want an error", tc.payload)
			case tc.err != "" && tc.err != "*" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("checkHistoryAnswer(%s) = %v, want an error with %q", tc.payload, err, tc.err)
			}
		})
	}
	// Every truncation of a good answer fails.
	for n := range len(good) {
		if checkHistoryAnswer([]byte(good[:n]), 3) == nil {
			t.Errorf("checkHistoryAnswer accepts %s, cut at %d", good[:n], n)
		}
	}
}

// parseAnswer reads a PUBLISH with properties before and after the correlation data.
func TestParseAnswer(t *testing.T) {
	props := []byte{0x01, 1} // payload format indicator
	props = append(props, 0x26, 0, 1, 'k', 0, 2, 'v', 'w')
	props = append(props, propCorrelationData, 0, 3, '4', '2', '!')
	props = append(props, 0x0b, 0x81, 0x01) // subscription identifier 129
	props = append(props, 0x02, 0, 0, 0, 9) // message expiry
	body := binary.BigEndian.AppendUint16(nil, 5)
	body = append(body, "a/b/c"...)
	body = binary.BigEndian.AppendUint16(body, 0x8001)
	body = appendVBI(body, len(props))
	body = append(body, props...)
	body = append(body, `{"result":[]}`...)
	p, err := parseAnswer(body, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.topic != "a/b/c" || p.id != 0x8001 || string(p.corr) != "42!" || string(p.payload) != `{"result":[]}` {
		t.Errorf("parseAnswer = %+v", p)
	}
	for n := range len(body) - len(`{"result":[]}`) {
		if p, err := parseAnswer(body[:n], 1); err == nil && len(p.payload) > 0 {
			t.Errorf("parseAnswer accepts the body cut at %d: %+v", n, p)
		}
	}
	if _, err := parseAnswer(append(binary.BigEndian.AppendUint16(nil, 1), 'x', 2, 0x7f, 0), 0); err == nil {
		t.Error("parseAnswer accepts an unknown property")
	}
}

func TestAppendVBI(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455} {
		b := appendVBI(nil, n)
		got, err := readVBI(&sliceReader{b: b})
		if err != nil || got != n || len(b) != vbiLen(n) {
			t.Errorf("appendVBI(%d) = %x: reads back as %d, %v; vbiLen %d", n, b, got, err, vbiLen(n))
		}
	}
}

// TestRPCRequesters runs the history scenario briefly with both requesters, at QoS 0 and 1,
// against roomq on the memory store: every answer is checked, none may fail.
func TestRPCRequesters(t *testing.T) {
	before := runtime.NumGoroutine()
	defer checkGoroutines(t, before)
	for _, args := range [][]string{
		{"-requester", "raw", "-qos", "0"},
		{"-requester", "raw", "-qos", "1"},
		{"-requester", "client"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			rep := runJSON(t, append([]string{"rpc", "-clients", "2", "-history", "30", "-count", "50", "-duration", "20s"}, args...)...)
			if len(rep.Results) != 1 {
				t.Fatalf("got %d results, want 1", len(rep.Results))
			}
			r := rep.Results[0]
			if r.Error != "" || r.Errors != 0 || r.Lost != 0 {
				t.Fatalf("error %q, %d errors (%v), %d lost", r.Error, r.Errors, r.FirstErrors, r.Lost)
			}
			if r.Sent != 100 || r.Delivered != 100 {
				t.Errorf("sent %d, answered %d, want 100", r.Sent, r.Delivered)
			}
		})
	}
}

// fakeBroker reads one request from conn and checks it; answer then writes the packets of the
// answer. It runs on the test's goroutine, the requester on another.
type fakeBroker struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// request reads a PUBLISH and returns its QoS, packet id, response topic and correlation data.
func (b *fakeBroker) request() (qos byte, id uint16, responseTopic string, corr []byte) {
	b.t.Helper()
	first, err := b.r.ReadByte()
	if err != nil {
		b.t.Fatal(err)
	}
	n, err := readVBI(b.r)
	if err != nil {
		b.t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(b.r, body); err != nil {
		b.t.Fatal(err)
	}
	if first>>4 != typePublish {
		b.t.Fatalf("got packet type %d, want PUBLISH", first>>4)
	}
	qos = (first >> 1) & 3
	p, err := parseAnswer(body, qos)
	if err != nil {
		b.t.Fatal(err)
	}
	if p.topic != "$rpc/roomHistoryGet" || string(p.payload) != `{"room":"r","id":0,"limit":3}` {
		b.t.Fatalf("request %+v", p)
	}
	// parseAnswer keeps only the correlation data: read the response topic here.
	i := 2 + len(p.topic) + map[byte]int{0: 0, 1: 2}[qos]
	br := &sliceReader{b: body, i: i}
	if _, err := readVBI(br); err != nil || body[br.i] != propResponseTopic {
		b.t.Fatalf("request properties %x do not start with the response topic", body[i:])
	}
	l := int(binary.BigEndian.Uint16(body[br.i+1:]))
	return qos, p.id, string(body[br.i+3 : br.i+3+l]), p.corr
}

// publish writes a QoS 0 PUBLISH of payload to topic with correlation data corr.
func (b *fakeBroker) publish(topic string, corr []byte, payload string) {
	b.t.Helper()
	props := append([]byte{propCorrelationData}, binary.BigEndian.AppendUint16(nil, uint16(len(corr)))...)
	props = append(props, corr...)
	body := binary.BigEndian.AppendUint16(nil, uint16(len(topic)))
	body = append(body, topic...)
	body = appendVBI(body, len(props))
	body = append(append(body, props...), payload...)
	b.write(append(appendVBI([]byte{typePublish << 4}, len(body)), body...))
}

func (b *fakeBroker) write(pk []byte) {
	b.t.Helper()
	if _, err := b.conn.Write(pk); err != nil {
		b.t.Fatal(err)
	}
}

// The raw requester takes the answer with its request's correlation data on its replies
// topic, skipping others, waits for the PUBACK of a QoS 1 request, and fails on a bad answer.
func TestRawRequesterRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		qos    byte
		answer func(b *fakeBroker, id uint16, replies string, corr []byte)
		err    string
	}{
		{"answer after others", 0, func(b *fakeBroker, _ uint16, replies string, corr []byte) {
			b.publish(replies, []byte("0"), historyAnswer(9)) // a late answer to an earlier request
			b.publish("rooms/r", nil, "\x00live")             // a room message
			b.publish(replies, corr, historyAnswer(1, 2, 3))
		}, ""},
		{"QoS 1, PUBACK after the answer", 1, func(b *fakeBroker, id uint16, replies string, corr []byte) {
			b.publish(replies, corr, historyAnswer(1, 2, 3))
			b.write([]byte{typePuback << 4, 2, byte(id >> 8), byte(id)})
		}, ""},
		{"QoS 1, refused", 1, func(b *fakeBroker, id uint16, _ string, _ []byte) {
			b.write([]byte{typePuback << 4, 3, byte(id >> 8), byte(id), 0x87})
		}, "PUBACK 0x87"},
		{"short answer", 0, func(b *fakeBroker, _ uint16, replies string, corr []byte) {
			b.publish(replies, corr, historyAnswer(1, 2))
		}, "returned 2 messages, want 3"},
		{"error answer", 0, func(b *fakeBroker, _ uint16, replies string, corr []byte) {
			b.publish(replies, corr, `{"error":{"code":"notJoined","message":"no"}}`)
		}, "notJoined"},
		{"answer on another topic", 0, func(b *fakeBroker, _ uint16, _ string, corr []byte) {
			b.publish("users/u/replies/other", corr, historyAnswer(1, 2, 3))
		}, "deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			q := &rawRequester{conn: client, r: bufio.NewReader(client), w: bufio.NewWriter(client),
				topic: "$rpc/roomHistoryGet", replies: "users/u/replies/c", qos: tc.qos,
				args: []byte(`{"room":"r","id":0,"limit":3}`), want: 3}
			defer q.close()
			defer server.Close() // first: nothing reads the requester's DISCONNECT
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- q.historyGet(ctx) }()
			b := &fakeBroker{t: t, conn: server, r: bufio.NewReader(server)}
			qos, id, replies, corr := b.request()
			if qos != tc.qos || replies != q.replies || len(corr) == 0 || (qos > 0 && id == 0) {
				t.Fatalf("request QoS %d, id %d, response topic %q, correlation %q", qos, id, replies, corr)
			}
			tc.answer(b, id, replies, corr)
			err := <-done
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("historyGet = %v, want nil", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("historyGet = %v, want an error with %q", err, tc.err)
			}
		})
	}
}
