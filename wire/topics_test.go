package wire_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roomq/roomq/wire"
)

func TestParseTopic(t *testing.T) {
	cases := []struct {
		topic string
		want  wire.Topic
	}{
		// rooms/{room} and rooms/{room}/events.
		{"rooms/general", wire.Topic{Kind: wire.TopicRoom, Name: "general"}},
		{"rooms/Zürich chat", wire.Topic{Kind: wire.TopicRoom, Name: "Zürich chat"}},
		{"rooms/" + strings.Repeat("r", 128), wire.Topic{Kind: wire.TopicRoom, Name: strings.Repeat("r", 128)}},
		{"rooms/general/events", wire.Topic{Kind: wire.TopicRoomEvents, Name: "general"}},
		{"rooms/events", wire.Topic{Kind: wire.TopicRoom, Name: "events"}},
		{"rooms/events/events", wire.Topic{Kind: wire.TopicRoomEvents, Name: "events"}},
		{"rooms/a/b", wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms/a/events/x", wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms/a/Events", wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms/a/", wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms/", wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms//events", wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms/$x", wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms/a:b", wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms/+", wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms/#", wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms/a\x00", wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms/" + strings.Repeat("r", 129), wire.Topic{Kind: wire.TopicInvalid}},
		{"rooms", wire.Topic{Kind: wire.TopicInvalid}},

		// users/{user}/...
		{"users/bob/inbox", wire.Topic{Kind: wire.TopicUserInbox, Name: "bob"}},
		{"users/bob/events", wire.Topic{Kind: wire.TopicUserEvents, Name: "bob"}},
		{"users/bob/replies", wire.Topic{Kind: wire.TopicUserReplies, Name: "bob"}},
		{"users/bob/replies/x", wire.Topic{Kind: wire.TopicUserReplies, Name: "bob"}},
		{"users/bob/replies/c1/42", wire.Topic{Kind: wire.TopicUserReplies, Name: "bob"}},
		{"users/bob/replies/", wire.Topic{Kind: wire.TopicUserReplies, Name: "bob"}},
		{"users/bob/repliesx", wire.Topic{Kind: wire.TopicUserOther, Name: "bob"}},
		{"users/bob/inbox/x", wire.Topic{Kind: wire.TopicUserOther, Name: "bob"}},
		{"users/bob/inboxes", wire.Topic{Kind: wire.TopicUserOther, Name: "bob"}},
		{"users/bob/events/x", wire.Topic{Kind: wire.TopicUserOther, Name: "bob"}},
		{"users/bob/status", wire.Topic{Kind: wire.TopicUserOther, Name: "bob"}},
		{"users/bob/", wire.Topic{Kind: wire.TopicUserOther, Name: "bob"}},
		// A bare users/{user} is private to that user like any other topic of the namespace.
		{"users/bob", wire.Topic{Kind: wire.TopicUserOther, Name: "bob"}},
		{"users/$x/inbox", wire.Topic{Kind: wire.TopicInvalid}},
		{"users//inbox", wire.Topic{Kind: wire.TopicInvalid}},
		{"users/+/inbox", wire.Topic{Kind: wire.TopicInvalid}},
		{"users/a:b/inbox", wire.Topic{Kind: wire.TopicInvalid}},
		{"users/", wire.Topic{Kind: wire.TopicInvalid}},
		{"users", wire.Topic{Kind: wire.TopicInvalid}},

		// presence/{user}.
		{"presence/bob", wire.Topic{Kind: wire.TopicPresence, Name: "bob"}},
		{"presence/a/b", wire.Topic{Kind: wire.TopicInvalid}},
		{"presence/bob/", wire.Topic{Kind: wire.TopicInvalid}},
		{"presence/", wire.Topic{Kind: wire.TopicInvalid}},
		{"presence/$x", wire.Topic{Kind: wire.TopicInvalid}},
		{"presence", wire.Topic{Kind: wire.TopicInvalid}},

		// $rpc/{command}.
		{"$rpc/roomJoin", wire.Topic{Kind: wire.TopicRPC, Name: "roomJoin"}},
		{"$rpc/x", wire.Topic{Kind: wire.TopicRPC, Name: "x"}},
		{"$rpc/", wire.Topic{Kind: wire.TopicInvalid}},
		{"$rpc/a/b", wire.Topic{Kind: wire.TopicInvalid}},
		{"$rpc/a/", wire.Topic{Kind: wire.TopicInvalid}},
		{"$rpc", wire.Topic{Kind: wire.TopicInvalid}},

		// Plain topics, including look-alikes of the reserved namespaces.
		{"devices/1/rpc", wire.Topic{Kind: wire.TopicPlain}},
		{"devices/1/rpc/reboot", wire.Topic{Kind: wire.TopicPlain}},
		{"sensors/kitchen/temp", wire.Topic{Kind: wire.TopicPlain}},
		{"a", wire.Topic{Kind: wire.TopicPlain}},
		{"/rooms/general", wire.Topic{Kind: wire.TopicPlain}},
		{"Rooms/general", wire.Topic{Kind: wire.TopicPlain}},
		{"roomsx/general", wire.Topic{Kind: wire.TopicPlain}},
		{"room/general", wire.Topic{Kind: wire.TopicPlain}},
		{"usersx/bob/inbox", wire.Topic{Kind: wire.TopicPlain}},
		{"presencex/bob", wire.Topic{Kind: wire.TopicPlain}},
		{"$rpcx/a", wire.Topic{Kind: wire.TopicPlain}},
		{"$RPC/a", wire.Topic{Kind: wire.TopicPlain}},
		{"$SYS/broker/uptime", wire.Topic{Kind: wire.TopicPlain}},
	}
	for _, tc := range cases {
		t.Run(tc.topic, func(t *testing.T) {
			if got := wire.ParseTopic(tc.topic); got != tc.want {
				t.Errorf("ParseTopic(%q) = %+v, want %+v", tc.topic, got, tc.want)
			}
		})
	}
}

func TestTopicBuilders(t *testing.T) {
	cases := []struct {
		got, want string
	}{
		{wire.RoomTopic("general"), "rooms/general"},
		{wire.RoomEventsTopic("general"), "rooms/general/events"},
		{wire.UserInboxTopic("bob"), "users/bob/inbox"},
		{wire.UserEventsTopic("bob"), "users/bob/events"},
		{wire.UserRepliesPrefix("bob"), "users/bob/replies/"},
		{wire.UserNamespace("bob"), "users/bob/"},
		{wire.PresenceTopic("bob"), "presence/bob"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestIsWildcard(t *testing.T) {
	cases := map[string]bool{
		"rooms/general": false,
		"a/b/c":         false,
		"":              false,
		"$rpc/x":        false,
		"+":             true,
		"#":             true,
		"rooms/+":       true,
		"users/bob/#":   true,
		"a+b":           true, // invalid filter, but it holds a wildcard character
	}
	for f, want := range cases {
		if got := wire.IsWildcard(f); got != want {
			t.Errorf("IsWildcard(%q) = %v, want %v", f, got, want)
		}
	}
}

// matchCases follow MQTT 3.1.1 section 4.7 and MQTT 5.0 section 4.7.
var matchCases = []struct {
	filter, topic string
	want          bool
}{
	// Exact.
	{"a", "a", true},
	{"a", "b", false},
	{"a/b", "a/b", true},
	{"a/b", "a", false},
	{"a", "a/b", false},
	{"a/b", "a/b/", false},
	{"a/", "a/", true},
	{"/a", "/a", true},
	{"/a", "a", false},
	{"A", "a", false},

	// Single level '+'.
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player2", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	{"+", "a", true},
	{"+", "a/b", false},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},
	{"+/tennis/#", "sport/tennis/player1", true},
	{"+/tennis/#", "sport/squash", false},
	{"rooms/+", "rooms/general", true},
	{"rooms/+", "rooms/general/events", false},
	{"+/+/events", "rooms/general/events", true},

	// Multi level '#'.
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/#", "sport", true},
	{"sport/#", "sport/", true},
	{"sport/#", "sports", false},
	{"sport/#", "sportx/a", false},
	{"#", "a", true},
	{"#", "a/b/c", true},
	{"#", "/", true},
	{"#", "/a", true},
	{"users/bob/#", "users/bob/inbox", true},
	{"users/bob/#", "users/bobby/inbox", false},

	// [MQTT-4.7.2-1]: filters starting with a wildcard do not match topics starting with '$'.
	{"#", "$SYS", false},
	{"#", "$SYS/broker/uptime", false},
	{"#", "$rpc/roomJoin", false},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"+", "$SYS", false},
	{"+/#", "$rpc/x", false},
	{"$SYS/#", "$SYS/broker/uptime", true},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"$rpc/#", "$rpc/roomJoin", true},
	{"$rpc/+", "$rpc/roomJoin", true},
	{"a/+", "a/$x", true},
	{"a/#", "a/$x/y", true},
}

func TestMatchTopic(t *testing.T) {
	for _, tc := range matchCases {
		t.Run(tc.filter+" "+tc.topic, func(t *testing.T) {
			if got := wire.MatchTopic(tc.filter, tc.topic); got != tc.want {
				t.Errorf("MatchTopic(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
			}
			if got := refMatch(tc.filter, tc.topic); got != tc.want {
				t.Errorf("reference refMatch(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
			}
		})
	}
}

var (
	roomsPrefix = []string{"rooms"}
	usersPrefix = []string{"users", "*"}
	rpcPrefix   = []string{"$rpc"}
)

// filterReachesCases are the questions package acl asks, plus the edges of the doc comment:
// "whether filter matches at least one topic that starts with the levels of prefix, where a
// prefix level '*' stands for any value except those listed in except".
var filterReachesCases = []struct {
	filter string
	prefix []string
	except []string
	want   bool
}{
	// Any rooms/ topic.
	{"rooms/+", roomsPrefix, nil, true},
	{"rooms/#", roomsPrefix, nil, true},
	{"#", roomsPrefix, nil, true},
	{"+/general", roomsPrefix, nil, true},
	{"+/+/events", roomsPrefix, nil, true},
	{"+/+", roomsPrefix, nil, true},
	{"+/#", roomsPrefix, nil, true},
	{"+", roomsPrefix, nil, true}, // matches the topic "rooms", which has the prefix's levels
	{"rooms/general/+", roomsPrefix, nil, true},
	// rooms/x/y/z is no valid room topic, but it is a topic that starts with rooms.
	{"+/x/y/z", roomsPrefix, nil, true},
	{"rooms", roomsPrefix, nil, true},
	{"devices/+", roomsPrefix, nil, false},
	{"devices/#", roomsPrefix, nil, false},
	{"roomsx/+", roomsPrefix, nil, false},
	{"Rooms/+", roomsPrefix, nil, false},
	{"presence/+", roomsPrefix, nil, false},
	{"/rooms/+", roomsPrefix, nil, false},
	{"$share/g/rooms/+", roomsPrefix, nil, false}, // FilterReaches knows nothing of $share
	{"", roomsPrefix, nil, false},

	// Another user's topics: users/*/... except the caller.
	{"users/+/inbox", usersPrefix, []string{"alice"}, true},
	{"users/#", usersPrefix, []string{"alice"}, true},
	{"users/+", usersPrefix, []string{"alice"}, true},
	{"users/+/#", usersPrefix, []string{"alice"}, true},
	{"users/bob/#", usersPrefix, []string{"alice"}, true},
	{"users/bob/+", usersPrefix, []string{"alice"}, true},
	{"users/alice/#", usersPrefix, []string{"alice"}, false},
	{"users/alice/+", usersPrefix, []string{"alice"}, false},
	{"users/alice/replies/+", usersPrefix, []string{"alice"}, false},
	{"users/alice/#", usersPrefix, []string{"alice", "carol"}, false},
	{"users/carol/#", usersPrefix, []string{"alice", "carol"}, false},
	{"users/bob/#", usersPrefix, []string{"alice", "carol"}, true},
	{"users/alice/#", usersPrefix, nil, true},
	{"users/Alice/#", usersPrefix, []string{"alice"}, true},
	{"+/bob/inbox", usersPrefix, []string{"alice"}, true},
	{"+/alice/inbox", usersPrefix, []string{"alice"}, false},
	{"+/+/inbox", usersPrefix, []string{"alice"}, true},
	{"#", usersPrefix, []string{"alice"}, true},
	{"users", usersPrefix, []string{"alice"}, false},
	{"presence/+", usersPrefix, []string{"alice"}, false},

	// $rpc/: [MQTT-4.7.2-1] keeps leading wildcards away from it.
	{"$rpc/#", rpcPrefix, nil, true},
	{"$rpc/+", rpcPrefix, nil, true},
	{"$rpc/+/x", rpcPrefix, nil, true},
	{"#", rpcPrefix, nil, false},
	{"+/#", rpcPrefix, nil, false},
	{"+/+", rpcPrefix, nil, false},
	{"$RPC/#", rpcPrefix, nil, false},
	{"$SYS/#", rpcPrefix, nil, false},
}

func TestFilterReaches(t *testing.T) {
	for _, tc := range filterReachesCases {
		t.Run(tc.filter+" "+strings.Join(tc.prefix, "/")+" except "+strings.Join(tc.except, ","), func(t *testing.T) {
			if got := wire.FilterReaches(tc.filter, tc.prefix, tc.except...); got != tc.want {
				t.Errorf("FilterReaches(%q, %q, %q) = %v, want %v", tc.filter, tc.prefix, tc.except, got, tc.want)
			}
			if validFilter(tc.filter) {
				if got := refReaches(tc.filter, tc.prefix, tc.except); got != tc.want {
					t.Errorf("reference refReaches(%q, %q, %q) = %v, want %v", tc.filter, tc.prefix, tc.except, got, tc.want)
				}
			}
		})
	}
}

// refMatch is a reference topic matcher for the fuzz targets, built independently of
// MatchTopic: the filter becomes a regular expression. filter must be a valid filter and topic
// a valid topic name, both UTF-8.
func refMatch(filter, topic string) bool {
	levels := strings.Split(filter, "/")
	if (levels[0] == "+" || levels[0] == "#") && strings.HasPrefix(topic, "$") {
		return false // [MQTT-4.7.2-1]
	}
	var re strings.Builder
	re.WriteString(`(?s)^`)
	for i, l := range levels {
		switch {
		case l == "#" && i == 0:
			re.WriteString(`.*`)
		case l == "#":
			re.WriteString(`(/.*)?`) // also matches the parent level [MQTT-4.7.1-2]
		default:
			if i > 0 {
				re.WriteString(`/`)
			}
			if l == "+" {
				re.WriteString(`[^/]*`)
			} else {
				re.WriteString(regexp.QuoteMeta(l))
			}
		}
	}
	re.WriteString(`$`)
	return regexp.MustCompile(re.String()).MatchString(topic)
}

// validFilter reports whether f is a valid UTF-8 topic filter: non-empty, '+' alone in its
// level, '#' alone in the last level.
func validFilter(f string) bool {
	if f == "" || !utf8.ValidString(f) {
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

// validTopicName reports whether s is a valid UTF-8 topic name: non-empty, no wildcards.
func validTopicName(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.ContainsAny(s, "+#")
}

// refReaches answers FilterReaches by building the one topic that could witness it and
// matching it with refMatch.
func refReaches(filter string, prefix, except []string) bool {
	other := "someone" // one level, longer than any excepted name, so never one of them
	for _, e := range except {
		other += strings.Repeat("x", len(e))
	}
	fl := strings.Split(filter, "/")
	var topic []string
	for i, p := range prefix {
		if i >= len(fl) {
			return false // the filter matches fewer levels than the prefix has
		}
		f := fl[i]
		level := p
		switch {
		case f == "#":
			for _, q := range prefix[i:] {
				if q == "*" {
					q = other
				}
				topic = append(topic, q)
			}
			return refMatch(filter, strings.Join(topic, "/"))
		case f == "+":
			if p == "*" {
				level = other
			}
		case p == "*":
			for _, e := range except {
				if f == e {
					return false
				}
			}
			level = f
		case f != p:
			return false
		}
		topic = append(topic, level)
	}
	for _, f := range fl[len(prefix):] {
		if f == "#" {
			break
		}
		if f == "+" {
			f = "x"
		}
		topic = append(topic, f)
	}
	return refMatch(filter, strings.Join(topic, "/"))
}

func FuzzMatchTopic(f *testing.F) {
	for _, tc := range matchCases {
		f.Add(tc.filter, tc.topic)
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		got := wire.MatchTopic(filter, topic) // must not panic on any input
		if !validFilter(filter) || !validTopicName(topic) {
			return
		}
		if want := refMatch(filter, topic); got != want {
			t.Fatalf("MatchTopic(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
		if !wire.IsWildcard(filter) && got != (filter == topic) {
			t.Fatalf("MatchTopic(%q, %q) = %v for a filter without wildcards", filter, topic, got)
		}
	})
}

func FuzzFilterReaches(f *testing.F) {
	for _, tc := range filterReachesCases {
		except := ""
		if len(tc.except) > 0 {
			except = tc.except[0]
		}
		f.Add(tc.filter, except)
	}
	f.Fuzz(func(t *testing.T, filter, except string) {
		for _, prefix := range [][]string{roomsPrefix, usersPrefix, rpcPrefix, {"a", "*", "b"}} {
			got := wire.FilterReaches(filter, prefix, except) // must not panic on any input
			if !validFilter(filter) || !utf8.ValidString(except) {
				continue
			}
			if want := refReaches(filter, prefix, []string{except}); got != want {
				t.Fatalf("FilterReaches(%q, %q, %q) = %v, reference says %v", filter, prefix, except, got, want)
			}
		}
	})
}

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		"rooms/general", "rooms/general/events", "rooms/a/b", "users/bob/inbox", "users/bob/events",
		"users/bob/replies/x", "users/bob/x", "users/bob", "presence/bob", "$rpc/roomJoin", "$rpc/a/b",
		"devices/1/rpc", "rooms", "users/", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		got := wire.ParseTopic(topic)
		switch got.Kind {
		case wire.TopicRoom, wire.TopicRoomEvents, wire.TopicUserInbox, wire.TopicUserEvents,
			wire.TopicUserReplies, wire.TopicUserOther, wire.TopicPresence:
			if !wire.ValidName(got.Name) {
				t.Fatalf("ParseTopic(%q) = %+v: invalid name", topic, got)
			}
		case wire.TopicRPC:
			if got.Name == "" || strings.Contains(got.Name, "/") {
				t.Fatalf("ParseTopic(%q) = %+v: bad command", topic, got)
			}
		case wire.TopicPlain, wire.TopicInvalid:
			if got.Name != "" {
				t.Fatalf("ParseTopic(%q) = %+v: name set", topic, got)
			}
		default:
			t.Fatalf("ParseTopic(%q) = %+v: unknown kind", topic, got)
		}
		// The topic rebuilt from the parse is the topic.
		var ok bool
		switch got.Kind {
		case wire.TopicRoom:
			ok = wire.RoomTopic(got.Name) == topic
		case wire.TopicRoomEvents:
			ok = wire.RoomEventsTopic(got.Name) == topic
		case wire.TopicUserInbox:
			ok = wire.UserInboxTopic(got.Name) == topic
		case wire.TopicUserEvents:
			ok = wire.UserEventsTopic(got.Name) == topic
		case wire.TopicUserReplies:
			ok = topic == strings.TrimSuffix(wire.UserRepliesPrefix(got.Name), "/") ||
				strings.HasPrefix(topic, wire.UserRepliesPrefix(got.Name))
		case wire.TopicUserOther:
			ok = topic == strings.TrimSuffix(wire.UserNamespace(got.Name), "/") ||
				strings.HasPrefix(topic, wire.UserNamespace(got.Name))
		case wire.TopicPresence:
			ok = wire.PresenceTopic(got.Name) == topic
		case wire.TopicRPC:
			ok = wire.RPCPrefix+got.Name == topic
		case wire.TopicPlain:
			ok = true
			for _, p := range []string{wire.RoomsPrefix, wire.UsersPrefix, wire.PresencePrefix, wire.RPCPrefix} {
				if strings.HasPrefix(topic, p) || topic == strings.TrimSuffix(p, "/") {
					ok = false
				}
			}
		case wire.TopicInvalid:
			ok = false
			for _, p := range []string{wire.RoomsPrefix, wire.UsersPrefix, wire.PresencePrefix, wire.RPCPrefix} {
				if strings.HasPrefix(topic, p) || topic == strings.TrimSuffix(p, "/") {
					ok = true
				}
			}
		}
		if !ok {
			t.Fatalf("ParseTopic(%q) = %+v does not describe the topic", topic, got)
		}
	})
}
