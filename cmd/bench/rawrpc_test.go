package main

import (
	"encoding/binary"
	"runtime"
	"strings"
	"testing"

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
