package hooks

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestOlderRetainedReplaced checks that when Mochi retains a message older than the newest
// one the router knows of for its topic (a local publish retained after a newer one from
// another instance), the newest is retained again; and that the newest itself stays.
func TestOlderRetainedReplaced(t *testing.T) {
	r := &Router{srv: mqtt.New(nil), retained: make(map[string]retainedVersion)}
	publish := func(payload string) packets.Packet {
		return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: "config/d", Payload: []byte(payload)}
	}
	retainedHere := func() string {
		pk, ok := r.srv.Topics.Retained.Get("config/d")
		if !ok {
			return ""
		}
		return string(pk.Payload)
	}
	older, newer := publish("older"), publish("newer")
	if !r.newerRetained(older, 1) || !r.newerRetained(newer, 2) {
		t.Fatal("versions 1 then 2 not taken as newer")
	}
	if r.newerRetained(publish("stale"), 1) {
		t.Fatal("version 1 taken as newer than 2")
	}
	// Mochi retains the newer one first, then the older one it was still handling.
	r.srv.Topics.RetainMessage(newer)
	r.OnRetainMessage(nil, newer, 1)
	if got := retainedHere(); got != "newer" {
		t.Fatalf("retained %q after the newer, want newer", got)
	}
	r.srv.Topics.RetainMessage(older)
	r.OnRetainMessage(nil, older, 1)
	if got := retainedHere(); got != "newer" {
		t.Fatalf("retained %q after Mochi retained the older, want newer", got)
	}
}
