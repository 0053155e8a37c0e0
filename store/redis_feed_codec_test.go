package store

import (
	"bytes"
	"strconv"
	"testing"
)

// feedFrame builds a feed frame like appendScript does.
func feedFrame(id uint64, epoch string, m Message) string {
	return strconv.FormatUint(id, 10) + ":" + strconv.Itoa(len(epoch)) + ":" + epoch + string(encodeMessage(m))
}

func FuzzRedisFeedFrame(f *testing.F) {
	f.Add(uint64(1), "0123456789abcdef", int64(1700000000000), "alice", false, []byte(`{"a":1}`), "")
	f.Add(uint64(1<<53), "", int64(-1), "", true, []byte{0, ':', 2}, "1:2:ab")
	f.Add(uint64(7), "a:b", int64(0), "x:y", false, []byte(nil), "7:99:")
	f.Fuzz(func(t *testing.T, id uint64, epoch string, ts int64, author string, binary bool, payload []byte, raw string) {
		in := Message{ID: id, Author: author, Timestamp: ts, Binary: binary, Payload: payload}
		out, gotEpoch, err := decodeFeedFrame(feedFrame(id, epoch, in))
		if id == 0 {
			if err == nil {
				t.Fatalf("a frame of id 0 decoded")
			}
			return
		}
		if err != nil {
			t.Fatalf("decode(frame(%+v, %q)): %v", in, epoch, err)
		}
		if gotEpoch != epoch || out.ID != in.ID || out.Author != in.Author || out.Timestamp != in.Timestamp ||
			out.Binary != in.Binary || !bytes.Equal(out.Payload, in.Payload) || (out.Payload == nil) != (in.Payload == nil) {
			t.Fatalf("decode(frame(%+v, %q)) = %+v, %q", in, epoch, out, gotEpoch)
		}
		// Anything else decodes or fails, and never panics.
		_, _, _ = decodeFeedFrame(raw)
	})
}
