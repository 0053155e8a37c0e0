package store

import (
	"bytes"
	"testing"
)

func FuzzRedisMessage(f *testing.F) {
	f.Add(int64(1700000000000), "alice", false, []byte(`{"a":1}`), false)
	f.Add(int64(-1), "", true, []byte{0, 1, 2}, true)
	f.Add(int64(-1), "", true, []byte{}, false)
	f.Fuzz(func(t *testing.T, ts int64, author string, binary bool, payload []byte, nilPayload bool) {
		if nilPayload {
			payload = nil
		}
		in := Message{Author: author, Timestamp: ts, Binary: binary, Payload: payload}
		enc := encodeMessage(in)
		out, buf, err := decodeMessage(string(enc), nil)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", in, err)
		}
		if out.Author != in.Author || out.Timestamp != in.Timestamp || out.Binary != in.Binary ||
			!bytes.Equal(out.Payload, in.Payload) || (out.Payload == nil) != (in.Payload == nil) {
			t.Fatalf("decode(encode(%+v)) = %+v", in, out)
		}
		if len(buf) != len(payload) {
			t.Fatalf("buffer grew by %d for a payload of %d", len(buf), len(payload))
		}
		// Arbitrary stored bytes must decode or fail, never panic, and truncated encodings
		// must fail or decode to a shorter payload.
		for i := range enc {
			_, _, _ = decodeMessage(string(enc[:i]), nil)
		}
		_, _, _ = decodeMessage(string(payload), nil)
	})
}
