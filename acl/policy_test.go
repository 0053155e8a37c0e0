package acl_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

var (
	alice = acl.Identity{User: "alice"}
	root  = acl.Identity{User: "root", Roles: []string{acl.RoleAdmin}}
)

func decisionName(d acl.Decision) string {
	switch d {
	case acl.Deny:
		return "Deny"
	case acl.Allow:
		return "Allow"
	case acl.AllowRoom:
		return "AllowRoom"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

type verdict struct {
	d    acl.Decision
	room string
}

func (v verdict) String() string {
	if v.room != "" {
		return decisionName(v.d) + " " + v.room
	}
	return decisionName(v.d)
}

var (
	deny  = verdict{d: acl.Deny}
	allow = verdict{d: acl.Allow}
)

func allowRoom(room string) verdict { return verdict{acl.AllowRoom, room} }

// subscribeCases follow docs/protocol.md, "Topic namespace": the verdict for the normal user
// alice and for root, who has the admin role.
var subscribeCases = []struct {
	filter      string
	alice, root verdict
}{
	// One room at a time: the caller checks the room's permissions.
	{"rooms/general", allowRoom("general"), allowRoom("general")},
	{"rooms/general/events", allowRoom("general"), allowRoom("general")},
	{"rooms/Zürich chat", allowRoom("Zürich chat"), allowRoom("Zürich chat")},

	// Wildcards reaching any rooms/ topic: admins only.
	{"rooms/+", deny, allow},
	{"rooms/#", deny, allow},
	{"rooms/+/events", deny, allow},
	{"rooms/general/+", deny, allow},
	{"rooms/general/#", deny, allow},
	{"#", deny, allow},
	{"+", deny, allow},
	{"+/general", deny, allow},
	{"+/+/events", deny, allow},
	{"+/+", deny, allow},
	{"+/#", deny, allow},
	{"+/x/y/z", deny, allow},

	// Invalid topics of the reserved namespaces: nobody.
	{"rooms/a/b", deny, deny},
	{"rooms/", deny, deny},
	{"rooms", deny, deny},
	{"users/$x/inbox", deny, deny},
	{"presence/a/b", deny, deny},
	{"$rpc/a/b", deny, deny},

	// The user's own topics.
	{"users/alice/inbox", allow, allow},
	{"users/alice/events", allow, allow},
	{"users/alice/replies/c1", allow, allow},
	{"users/alice/replies/+", allow, allow},
	{"users/alice/replies/#", allow, allow},
	{"users/alice/status", allow, allow},
	{"users/alice", allow, allow},
	{"users/alice/+", allow, allow},
	{"users/alice/#", allow, allow},
	{"users/alice/+/x", allow, allow},

	// Other users' topics: admins only.
	{"users/bob/inbox", deny, allow},
	{"users/bob/events", deny, allow},
	{"users/bob/replies/c1", deny, allow},
	{"users/bob/status", deny, allow},
	{"users/bob", deny, allow},
	{"users/bob/#", deny, allow},
	{"users/bob/+", deny, allow},
	{"users/Alice/inbox", deny, allow},
	{"users/alicex/#", deny, allow},
	{"users/+/inbox", deny, allow},
	{"users/+", deny, allow},
	{"users/+/#", deny, allow},
	{"users/#", deny, allow},
	{"+/bob/inbox", deny, allow},
	{"+/alice/inbox", deny, allow}, // also matches rooms/alice/inbox, a rooms/ topic

	// Presence: anyone.
	{"presence/+", allow, allow},
	{"presence/#", allow, allow},
	{"presence/bob", allow, allow},
	{"presence/alice", allow, allow},

	// RPC requests: admins only.
	{"$rpc/x", deny, allow},
	{"$rpc/roomJoin", deny, allow},
	{"$rpc/+", deny, allow},
	{"$rpc/#", deny, allow},

	// Plain topics: open.
	{"devices/1/#", allow, allow},
	{"devices/1/rpc", allow, allow},
	{"devices/1/rpc/+", allow, allow},
	{"sensors/+/temp", allow, allow},
	{"Rooms/+", allow, allow},
	{"/rooms/+", allow, allow},
	{"roomsx/#", allow, allow},

	// $SYS is not in the namespace table: the policy treats it as a plain topic and allows
	// it, so every authenticated user may read Mochi's $SYS statistics.
	{"$SYS/#", allow, allow},
	{"$SYS/broker/clients/connected", allow, allow},
}

func TestSubscribeDecision(t *testing.T) {
	var p acl.Policy
	for _, tc := range subscribeCases {
		t.Run(tc.filter, func(t *testing.T) {
			d, room := p.SubscribeDecision(alice, "c1", tc.filter)
			if got := (verdict{d, room}); got != tc.alice {
				t.Errorf("alice: SubscribeDecision(%q) = %v, want %v", tc.filter, got, tc.alice)
			}
			d, room = p.SubscribeDecision(root, "c1", tc.filter)
			if got := (verdict{d, room}); got != tc.root {
				t.Errorf("admin: SubscribeDecision(%q) = %v, want %v", tc.filter, got, tc.root)
			}
		})
	}
}

// TestSubscribeDecisionSharedSubscriptions: Mochi (SharedSubAvailable by default) passes a
// v5 shared subscription "$share/{group}/{filter}" to OnACLCheck whole, and hooks.Router.publish
// delivers inbox, events, replies and presence messages to shared subscribers without a
// second ACL check. The filter after the group must be judged like any filter.
func TestSubscribeDecisionSharedSubscriptions(t *testing.T) {
	var p acl.Policy
	for _, f := range []string{
		"$share/g/users/bob/inbox",
		"$share/g/users/bob/events",
		"$share/g/users/bob/replies/c1",
		"$share/g/users/+/inbox",
		"$share/g/users/#",
		"$share/g/#",
		"$share/g/+/+/inbox",
		"$share/g/rooms/+",
		"$share/g/rooms/#",
		"$share/g/$rpc/#",
		"$share/g/$rpc/roomJoin",
		"$SHARE/g/users/bob/inbox", // Mochi matches the prefix case-insensitively
		"$Share/g/users/+/events",
	} {
		if d, room := p.SubscribeDecision(alice, "c1", f); d != acl.Deny {
			t.Errorf("alice: SubscribeDecision(%q) = %v, want Deny", f, verdict{d, room})
		}
	}
	// A shared subscription to a single room topic must at least go through the room's
	// permissions (or be refused): rooms/secret/events of a whitelist-only room is not public.
	for _, f := range []string{"$share/g/rooms/secret", "$share/g/rooms/secret/events"} {
		if d, room := p.SubscribeDecision(alice, "c1", f); d == acl.Allow {
			t.Errorf("alice: SubscribeDecision(%q) = %v, want Deny or AllowRoom", f, verdict{d, room})
		}
	}
	// Unaffected: shared subscriptions of plain topics stay allowed.
	if d, _ := p.SubscribeDecision(alice, "c1", "$share/g/devices/+/rpc"); d != acl.Allow {
		t.Errorf("alice: SubscribeDecision($share/g/devices/+/rpc) = %v, want Allow", decisionName(d))
	}
}

func TestPublishDecision(t *testing.T) {
	var p acl.Policy
	cases := []struct {
		topic       string
		alice, root acl.Decision
	}{
		{"devices/1/rpc", acl.Allow, acl.Allow},
		{"sensors/kitchen/temp", acl.Allow, acl.Allow},
		{"$SYS/x", acl.Allow, acl.Allow},
		{"users/alice/x", acl.Allow, acl.Deny},
		{"users/alice/status/battery", acl.Allow, acl.Deny},
		{"users/alice", acl.Allow, acl.Deny},
		{"users/alice/repliesx", acl.Allow, acl.Deny},
		// Broker-only and routed topics are never published to directly.
		{"users/alice/inbox", acl.Deny, acl.Deny},
		{"users/alice/events", acl.Deny, acl.Deny},
		{"users/alice/replies/c1", acl.Deny, acl.Deny},
		{"users/alice/replies", acl.Deny, acl.Deny},
		// Other users' topics; admins get no bypass here either.
		{"users/bob/x", acl.Deny, acl.Deny},
		{"users/bob/inbox", acl.Deny, acl.Deny},
		{"users/bob/events", acl.Deny, acl.Deny},
		{"users/bob/replies/c1", acl.Deny, acl.Deny},
		{"users/root/x", acl.Deny, acl.Allow},
		{"presence/alice", acl.Deny, acl.Deny},
		{"presence/bob", acl.Deny, acl.Deny},
		{"rooms/general/events", acl.Deny, acl.Deny},
		{"rooms/general", acl.Deny, acl.Deny}, // routed to the room before PublishDecision
		{"$rpc/roomJoin", acl.Deny, acl.Deny}, // routed to the RPC handler before
		{"rooms/a/b", acl.Deny, acl.Deny},
		{"users/$x/y", acl.Deny, acl.Deny},
		{"rooms", acl.Deny, acl.Deny},
	}
	for _, tc := range cases {
		t.Run(tc.topic, func(t *testing.T) {
			topic := wire.ParseTopic(tc.topic)
			if got := p.PublishDecision(alice, "c1", tc.topic, topic); got != tc.alice {
				t.Errorf("alice: PublishDecision(%q) = %s, want %s", tc.topic, decisionName(got), decisionName(tc.alice))
			}
			if got := p.PublishDecision(root, "c1", tc.topic, topic); got != tc.root {
				t.Errorf("admin: PublishDecision(%q) = %s, want %s", tc.topic, decisionName(got), decisionName(tc.root))
			}
		})
	}
}

func TestWillAllowed(t *testing.T) {
	var p acl.Policy
	cases := []struct {
		topic string
		want  bool
	}{
		{"rooms/general", true},
		{"users/bob/inbox", true},
		{"devices/1/status", true},
		{"users/alice/status", true},
		{"users/alice/inbox", false}, // a direct message to oneself
		{"users/alice/events", false},
		{"users/alice/replies/c1", false},
		{"users/bob/events", false},
		{"users/bob/status", false},
		{"users/bob/replies/c1", false},
		{"presence/alice", false},
		{"presence/bob", false},
		{"rooms/general/events", false},
		{"$rpc/x", false},
		{"rooms/a/b", false},
		{"users/$x/inbox", false},
		{"rooms", false},
	}
	for _, tc := range cases {
		t.Run(tc.topic, func(t *testing.T) {
			if got := p.WillAllowed(alice, "c1", tc.topic); got != tc.want {
				t.Errorf("WillAllowed(alice, %q) = %v, want %v", tc.topic, got, tc.want)
			}
		})
	}
}

func TestRoomPermissions(t *testing.T) {
	var p acl.Policy
	open := store.Room{Name: "general", Owner: "bob"}
	closed := store.Room{Name: "secret", Owner: "bob", WhitelistOnly: true}
	mine := store.Room{Name: "mine", Owner: "alice", WhitelistOnly: true}
	moderator := acl.Identity{User: "mod", Roles: []string{"moderator"}}
	bob := acl.Identity{User: "bob"}
	none := store.Listed{}
	admin := store.Listed{Admin: true}
	black := store.Listed{Blacklisted: true}
	white := store.Listed{Whitelisted: true}
	whiteBlack := store.Listed{Whitelisted: true, Blacklisted: true}
	adminBlack := store.Listed{Admin: true, Blacklisted: true}

	cases := []struct {
		name         string
		room         store.Room
		listed       store.Listed
		id           acl.Identity
		joined       bool
		join, post   bool
		manage, mAdm bool
		read         bool
	}{
		{"open room, user, not joined", open, none, alice, false, true, true, false, false, false},
		{"open room, user, joined", open, none, alice, true, true, true, false, false, true},
		{"open room, owner, not joined", open, none, bob, false, true, true, true, true, true},
		{"open room, global admin", open, none, root, false, true, true, true, true, true},
		{"open room, other role", open, none, moderator, false, true, true, false, false, false},
		{"open room, blacklisted, joined", open, black, alice, true, false, false, false, false, false},
		{"open room, room admin", open, admin, alice, false, true, true, true, false, true},
		{"open room, blacklisted room admin", open, adminBlack, alice, false, true, true, true, false, true},
		{"whitelist-only room, user", closed, none, alice, false, false, false, false, false, false},
		{"whitelist-only room, user, still joined", closed, none, alice, true, false, false, false, false, false},
		{"whitelist-only room, whitelisted", closed, white, alice, true, true, true, false, false, true},
		{"whitelist-only room, whitelisted and blacklisted", closed, whiteBlack, alice, true, false, false, false, false, false},
		{"whitelist-only room, room admin", closed, admin, alice, false, true, true, true, false, true},
		{"whitelist-only room, owner", closed, none, bob, false, true, true, true, true, true},
		{"whitelist-only room, global admin", closed, none, root, true, true, true, true, true, true},
		{"whitelist-only room, other role", closed, none, moderator, true, false, false, false, false, false},
		{"own whitelist-only room", mine, none, alice, false, true, true, true, true, true},
		{"owner blacklisted in own room", mine, black, alice, false, true, true, true, true, true},
		{"someone else's whitelist-only room", mine, none, bob, false, false, false, false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := acl.RoomAccess{Room: tc.room, Listed: tc.listed}
			if got := p.CanJoin(a, tc.id); got != tc.join {
				t.Errorf("CanJoin = %v, want %v", got, tc.join)
			}
			if got := p.CanPost(a, tc.id); got != tc.post {
				t.Errorf("CanPost = %v, want %v", got, tc.post)
			}
			if got := p.CanManage(a, tc.id); got != tc.manage {
				t.Errorf("CanManage = %v, want %v", got, tc.manage)
			}
			if got := p.CanManageAdmins(a, tc.id); got != tc.mAdm {
				t.Errorf("CanManageAdmins = %v, want %v", got, tc.mAdm)
			}
			if got := p.CanRead(a, tc.id, tc.joined); got != tc.read {
				t.Errorf("CanRead(joined=%v) = %v, want %v", tc.joined, got, tc.read)
			}
		})
	}
}

func TestCanDirect(t *testing.T) {
	var p acl.Policy
	cases := []struct {
		name string
		a    acl.DirectAccess
		from acl.Identity
		want bool
	}{
		{"open", acl.DirectAccess{To: "bob"}, alice, true},
		{"to oneself", acl.DirectAccess{To: "alice"}, alice, false},
		{"admin to oneself", acl.DirectAccess{To: "root"}, root, false},
		{"blacklisted", acl.DirectAccess{To: "bob", Listed: store.Listed{Blacklisted: true}}, alice, false},
		{"whitelist-only, not listed", acl.DirectAccess{To: "bob", WhitelistOnly: true}, alice, false},
		{"whitelist-only, whitelisted", acl.DirectAccess{To: "bob", WhitelistOnly: true, Listed: store.Listed{Whitelisted: true}}, alice, true},
		{"global admin past a blacklist", acl.DirectAccess{To: "bob", Listed: store.Listed{Blacklisted: true}}, root, true},
	}
	for _, tc := range cases {
		if got := p.CanDirect(tc.a, tc.from); got != tc.want {
			t.Errorf("%s: CanDirect = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestIsAdmin(t *testing.T) {
	for _, tc := range []struct {
		roles []string
		want  bool
	}{
		{nil, false},
		{[]string{}, false},
		{[]string{"moderator"}, false},
		{[]string{"Admin"}, false},
		{[]string{"admin"}, true},
		{[]string{"moderator", "admin"}, true},
	} {
		if got := (acl.Identity{User: "u", Roles: tc.roles}).IsAdmin(); got != tc.want {
			t.Errorf("IsAdmin(%q) = %v, want %v", tc.roles, got, tc.want)
		}
	}
}

// validFilter reports whether f is a valid topic filter, as Mochi checks before OnACLCheck.
func validFilter(f string) bool {
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if l == "+" || (l == "#" && i == len(levels)-1) {
			continue
		}
		if strings.ContainsAny(l, "+#") {
			return false
		}
	}
	return true
}

// sharedFilter returns the filter of a shared subscription $share/{group}/{filter}.
func sharedFilter(f string) (string, bool) {
	levels := strings.SplitN(f, "/", 3)
	if len(levels) == 3 && strings.EqualFold(levels[0], "$share") {
		return levels[2], true
	}
	return f, false
}

// protectedTopics are topics alice may not reach with an Allow verdict: any rooms/ topic
// (rooms are joined one at a time through AllowRoom), bob's topics, and RPC requests.
var protectedTopics = []string{
	"rooms/r", "rooms/r/events", "rooms/r/x/y", "rooms/", "users/bob/inbox", "users/bob/events",
	"users/bob/replies/c", "users/bob", "users/bob/x/y/z", "users//inbox", "$rpc/cmd", "$rpc/a/b",
}

func isProtected(topic string) bool {
	if strings.HasPrefix(topic, "rooms/") || strings.HasPrefix(topic, "$rpc/") {
		return true
	}
	if rest, ok := strings.CutPrefix(topic, "users/"); ok {
		user, _, _ := strings.Cut(rest, "/")
		return user != alice.User
	}
	return false
}

// witness fills the wildcards of filter with the levels of topic, to build a topic that
// filter matches and that looks like topic where the filter leaves room.
func witness(filter, topic string) string {
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	var out []string
	for i, f := range fl {
		switch {
		case f == "#":
			if i < len(tl) {
				out = append(out, tl[i:]...)
			}
			return strings.Join(out, "/")
		case f == "+" && i < len(tl):
			out = append(out, tl[i])
		case f == "+":
			out = append(out, "x")
		default:
			out = append(out, f)
		}
	}
	return strings.Join(out, "/")
}

func FuzzSubscribeDecision(f *testing.F) {
	for _, tc := range subscribeCases {
		f.Add(tc.filter)
	}
	f.Add("$share/g/devices/+")
	f.Add("$share/g/users/bob/inbox") // known bug: skips while TestSubscribeDecisionSharedSubscriptions fails
	var p acl.Policy
	f.Fuzz(func(t *testing.T, filter string) {
		d, room := p.SubscribeDecision(alice, "c1", filter) // must not panic on any input
		ad, _ := p.SubscribeDecision(root, "c1", filter)
		if !validFilter(filter) {
			return
		}
		switch d {
		case acl.AllowRoom:
			if wire.IsWildcard(filter) || !wire.ValidName(room) ||
				(filter != wire.RoomTopic(room) && filter != wire.RoomEventsTopic(room)) {
				t.Fatalf("SubscribeDecision(%q) = AllowRoom %q", filter, room)
			}
			if ad != acl.AllowRoom {
				t.Fatalf("admin gets %s for room filter %q", decisionName(ad), filter)
			}
		case acl.Allow:
			if room != "" {
				t.Fatalf("SubscribeDecision(%q) = Allow with room %q", filter, room)
			}
			effective, _ := sharedFilter(filter)
			for _, c := range protectedTopics {
				topic := witness(effective, c)
				if isProtected(topic) && wire.MatchTopic(effective, topic) {
					t.Fatalf("alice is allowed %q, which matches %q", filter, topic)
				}
			}
			if ad != acl.Allow {
				t.Fatalf("alice is allowed %q but admin gets %s", filter, decisionName(ad))
			}
		case acl.Deny:
			if room != "" {
				t.Fatalf("SubscribeDecision(%q) = Deny with room %q", filter, room)
			}
		default:
			t.Fatalf("SubscribeDecision(%q) = %d", filter, int(d))
		}
	})
}
