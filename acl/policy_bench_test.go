package acl_test

import (
	"testing"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// benchRules is a production-like rule set: devices own their subtree, users their logs,
// sensors are readable by all, everything else is denied.
func benchRules(b *testing.B) *acl.Rules {
	b.Helper()
	var rules []acl.Rule
	for _, s := range []string{
		"deny pubsub secret/#",
		"allow pubsub devices/%c/#",
		"allow pub logs/%u/%c",
		"allow sub logs/%u/+",
		"allow sub sensors/+/temp",
		"allow sub sensors/+/humidity",
		"allow pub sensors/%c/temp",
		"allow pub sensors/%c/humidity",
		"allow sub public/#",
		"allow pub public/%u/#",
	} {
		r, err := acl.ParseRule(s)
		if err != nil {
			b.Fatal(err)
		}
		rules = append(rules, r)
	}
	rs, err := acl.NewRules(rules, false)
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// BenchmarkSubscribeDecision measures the SUBSCRIBE decision (also made for every delivery by
// Mochi's read ACL check) for a room, the user's own replies, a plain topic judged by the
// rules, and a refused wildcard.
func BenchmarkSubscribeDecision(b *testing.B) {
	p := acl.Policy{Rules: benchRules(b)}
	for _, tc := range []struct{ name, filter string }{
		{"room", "rooms/general"},
		{"own-replies", "users/alice/replies/c1"},
		{"plain-allowed", "sensors/s17/temp"},
		{"plain-last-rule", "public/news/today"},
		{"plain-denied", "other/topic"},
		{"wildcard-rooms", "rooms/+"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.SubscribeDecision(alice, "c1", tc.filter)
			}
		})
	}
}

// BenchmarkPublishDecision measures the PUBLISH decision of a plain topic, including parsing
// the topic.
func BenchmarkPublishDecision(b *testing.B) {
	p := acl.Policy{Rules: benchRules(b)}
	for _, tc := range []struct{ name, topic string }{
		{"first-rule", "secret/x"},
		{"device", "devices/c1/state"},
		{"last-rule", "public/alice/news"},
		{"default-deny", "other/topic"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.PublishDecision(alice, "c1", tc.topic, wire.ParseTopic(tc.topic))
			}
		})
	}
	b.Run("no-rules", func(b *testing.B) {
		var open acl.Policy
		b.ReportAllocs()
		for b.Loop() {
			open.PublishDecision(alice, "c1", "devices/c1/state", wire.ParseTopic("devices/c1/state"))
		}
	})
}

// BenchmarkRoomPermissions measures the room decisions made for each room publish and join.
func BenchmarkRoomPermissions(b *testing.B) {
	var p acl.Policy
	a := acl.RoomAccess{Room: store.Room{Name: "general", Owner: "admin", WhitelistOnly: true},
		Listed: store.Listed{Whitelisted: true}}
	b.ReportAllocs()
	for b.Loop() {
		if !p.CanPost(a, alice) || !p.CanRead(a, alice, true) {
			b.Fatal("refused")
		}
	}
}
