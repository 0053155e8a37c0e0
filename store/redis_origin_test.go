package store

import (
	"bytes"
	"testing"
)

// TestRedisMessageOrigin checks that a bridged message's origin survives the stored form, and
// that a message without one encodes as before.
func TestRedisMessageOrigin(t *testing.T) {
	in := Message{Author: "bridge", Timestamp: 42, Payload: []byte(`{"a":1}`), OriginBroker: "edge", OriginID: 1 << 40}
	out, _, err := decodeMessage(string(encodeMessage(in)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.OriginBroker != in.OriginBroker || out.OriginID != in.OriginID || out.Author != in.Author || !bytes.Equal(out.Payload, in.Payload) {
		t.Fatalf("decode(encode(%+v)) = %+v", in, out)
	}
	plain := encodeMessage(Message{Author: "a", Timestamp: 1, Payload: []byte("x")})
	if plain[1]&messageOrigin != 0 {
		t.Fatalf("a message without origin has the origin flag")
	}
	enc := encodeMessage(in)
	for i := range enc {
		_, _, _ = decodeMessage(string(enc[:i]), nil) // truncations fail or decode, never panic
	}
}
