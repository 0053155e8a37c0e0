package rooms_test

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
)

func TestNewMessage(t *testing.T) {
	const head = `{"id":7,"author":"a\"b","timestamp":1700000000000`
	cases := []struct {
		name        string
		msg         store.Message
		wantPayload string
		wantJSON    string
	}{
		{
			name:        "text",
			msg:         store.Message{ID: 7, Author: `a"b`, Timestamp: 1700000000000, Payload: []byte(`{"textMessage":"hi"}`)},
			wantPayload: head + `,"textMessage":"hi"}`,
			wantJSON:    head + `,"textMessage":"hi"}`,
		},
		{
			name:        "json",
			msg:         store.Message{ID: 7, Author: `a"b`, Timestamp: 1700000000000, Payload: []byte(`{"a":{"b":[1,2]},"c":null,"d":"x\"y"}`)},
			wantPayload: head + `,"a":{"b":[1,2]},"c":null,"d":"x\"y"}`,
			wantJSON:    head + `,"a":{"b":[1,2]},"c":null,"d":"x\"y"}`,
		},
		{
			name:        "empty object",
			msg:         store.Message{ID: 7, Author: `a"b`, Timestamp: 1700000000000, Payload: []byte(`{}`)},
			wantPayload: head + `}`,
			wantJSON:    head + `}`,
		},
		{
			name:        "binary",
			msg:         store.Message{ID: 7, Author: `a"b`, Timestamp: 1700000000000, Binary: true, Payload: []byte{0x00, 0x01, 0x02, 0xff}},
			wantPayload: "\x00\x01\x02\xff",
			wantJSON:    head + `,"binary":"AAEC/w=="}`,
		},
		{
			name:        "binary JSON-looking bytes stay unchanged",
			msg:         store.Message{ID: 7, Author: `a"b`, Timestamp: 1700000000000, Binary: true, Payload: []byte(`{"x":1}`)},
			wantPayload: `{"x":1}`,
			wantJSON:    head + `,"binary":"eyJ4IjoxfQ=="}`,
		},
		{
			name:        "binary empty",
			msg:         store.Message{ID: 7, Author: `a"b`, Timestamp: 1700000000000, Binary: true, Payload: nil},
			wantPayload: "",
			wantJSON:    head + `,"binary":""}`,
		},
		{
			name:        "author escaping",
			msg:         store.Message{ID: 1, Author: "é\\<\u2028", Timestamp: 0, Payload: []byte(`{"textMessage":""}`)},
			wantPayload: `{"id":1,"author":"é\\\u003c\u2028","timestamp":0,"textMessage":""}`,
			wantJSON:    `{"id":1,"author":"é\\\u003c\u2028","timestamp":0,"textMessage":""}`,
		},
		{
			name:        "largest id, negative timestamp",
			msg:         store.Message{ID: math.MaxUint64, Author: "u", Timestamp: -1, Payload: []byte(`{}`)},
			wantPayload: `{"id":18446744073709551615,"author":"u","timestamp":-1}`,
			wantJSON:    `{"id":18446744073709551615,"author":"u","timestamp":-1}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := rooms.NewMessage("general", "ep1", "client-1", tc.msg)
			if got := m.Payload(); string(got) != tc.wantPayload {
				t.Errorf("Payload() = %q, want %q", got, tc.wantPayload)
			}
			if got := m.JSON(); string(got) != tc.wantJSON {
				t.Errorf("JSON() = %s, want %s", got, tc.wantJSON)
			}
			if !json.Valid(m.JSON()) {
				t.Errorf("JSON() %s is not valid JSON", m.JSON())
			}
			if !tc.msg.Binary && !json.Valid(m.Payload()) {
				t.Errorf("Payload() %s is not valid JSON", m.Payload())
			}
			if m.Room != "general" || m.Epoch != "ep1" || m.Origin != "client-1" {
				t.Errorf("Room, Epoch, Origin = %q, %q, %q", m.Room, m.Epoch, m.Origin)
			}
			if m.ID != tc.msg.ID || m.Author != tc.msg.Author || m.Timestamp != tc.msg.Timestamp || m.Binary != tc.msg.Binary {
				t.Errorf("embedded message = %+v, want %+v", m.Message, tc.msg)
			}
		})
	}
}

func TestNewMessageDoesNotChangeStoredPayload(t *testing.T) {
	payload := []byte(`{"textMessage":"hi"}`)
	orig := bytes.Clone(payload)
	m := rooms.NewMessage("r", "e", "", store.Message{ID: 1, Author: "a", Timestamp: 2, Payload: payload})
	if !bytes.Equal(payload, orig) {
		t.Fatalf("NewMessage changed the stored payload to %q", payload)
	}
	if !bytes.Equal(m.Message.Payload, orig) {
		t.Errorf("Message.Payload = %q, want the stored content %q", m.Message.Payload, orig)
	}
}

// TestNewMessageRoundTrip runs the checkers and the enrichment together, as a post does.
func TestNewMessageRoundTrip(t *testing.T) {
	c := rooms.NewCheckers()
	for _, tc := range []struct{ checker, payload, want string }{
		{rooms.CheckerText, ` { "textMessage" : "héllo" } `, `{"id":3,"author":"bob","timestamp":5,"textMessage":"héllo"}`},
		{rooms.CheckerJSON, ` { "x" : [ 1 ] , "y" : { } } `, `{"id":3,"author":"bob","timestamp":5,"x":[1],"y":{}}`},
		{rooms.CheckerJSON, ` { } `, `{"id":3,"author":"bob","timestamp":5}`},
		{rooms.CheckerBinary, "\x00raw", "\x00raw"},
	} {
		ch, _ := c.Get(tc.checker)
		content, binary, err := ch.Check([]byte(tc.payload))
		if err != nil {
			t.Fatalf("%s Check(%q) = %v", tc.checker, tc.payload, err)
		}
		m := rooms.NewMessage("r", "e", "", store.Message{ID: 3, Author: "bob", Timestamp: 5, Binary: binary, Payload: content})
		if got := string(m.Payload()); got != tc.want {
			t.Errorf("%s %q delivered as %q, want %q", tc.checker, tc.payload, got, tc.want)
		}
	}
}

// AppendJSON and MessageList give the JSON forms NewMessage gives, without wrapping.
func TestAppendJSONAndMessageList(t *testing.T) {
	msgs := []store.Message{
		{ID: 1, Author: "alice", Timestamp: 10, Payload: []byte(`{"textMessage":"hi"}`)},
		{ID: 2, Author: `a"b<é>&` + "\u2028\x01", Timestamp: -3, Payload: []byte(`{}`)},
		{ID: 3, Author: "bob", Timestamp: 12, Binary: true, Payload: []byte{0, 1, 2, 0xff}},
		{ID: 4, Author: "", Timestamp: 0, Binary: true},
		{ID: math.MaxUint64, Author: "c", Timestamp: math.MaxInt64, Payload: []byte(`{"a":[1,{"b":null}]}`)},
	}
	want := []byte{'['}
	for i, m := range msgs {
		j := rooms.NewMessage("r", "e", "", m).JSON()
		if got := rooms.AppendJSON([]byte("prefix"), m); string(got) != "prefix"+string(j) {
			t.Errorf("AppendJSON(%+v) = %s, want prefix%s", m, got, j)
		}
		if m.Author == "alice" && rooms.JSONSizeHint(m) < len(j) {
			t.Errorf("JSONSizeHint(%+v) = %d, below the length %d", m, rooms.JSONSizeHint(m), len(j))
		}
		if i > 0 {
			want = append(want, ',')
		}
		want = append(want, j...)
	}
	want = append(want, ']')
	list := rooms.MessageList(msgs)
	if got := list.AppendJSON(nil); !bytes.Equal(got, want) {
		t.Errorf("MessageList.AppendJSON = %s, want %s", got, want)
	}
	if got, err := json.Marshal(list); err != nil || !bytes.Equal(got, want) {
		t.Errorf("json.Marshal(MessageList) = %s, %v, want %s", got, err, want)
	}
	if !json.Valid(want) {
		t.Errorf("%s is not valid JSON", want)
	}
	if got, _ := json.Marshal(rooms.MessageList{}); string(got) != "[]" {
		t.Errorf("empty MessageList encodes as %s, want []", got)
	}
	if got, _ := json.Marshal(rooms.MessageList(nil)); string(got) != "[]" {
		t.Errorf("nil MessageList encodes as %s, want []", got)
	}
}
