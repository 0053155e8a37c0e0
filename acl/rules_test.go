package acl

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roomq/roomq/wire"
)

// mustRules builds rules from their text form.
func mustRules(t testing.TB, defaultAllow bool, lines ...string) *Rules {
	t.Helper()
	rules := make([]Rule, 0, len(lines))
	for _, l := range lines {
		r, err := ParseRule(l)
		if err != nil {
			t.Fatalf("ParseRule(%q): %v", l, err)
		}
		rules = append(rules, r)
	}
	rs, err := NewRules(rules, defaultAllow)
	if err != nil {
		t.Fatalf("NewRules(%q): %v", lines, err)
	}
	return rs
}

func TestParseRule(t *testing.T) {
	cases := []struct {
		in   string
		want Rule
	}{
		{"allow pub devices/%c/#", Rule{Allow: true, Access: AccessPublish, Pattern: "devices/%c/#"}},
		{"deny sub #", Rule{Access: AccessSubscribe, Pattern: "#"}},
		{"allow pubsub sensors/+/temp", Rule{Allow: true, Access: AccessBoth, Pattern: "sensors/+/temp"}},
		{"  deny\tpubsub \t $SYS/#  \n", Rule{Access: AccessBoth, Pattern: "$SYS/#"}},
		{"allow sub rooms of/%u and %c", Rule{Allow: true, Access: AccessSubscribe, Pattern: "rooms of/%u and %c"}},
		{`allow pub " padded "`, Rule{Allow: true, Access: AccessPublish, Pattern: " padded "}},
		{`allow pub "\"quoted\"/+"`, Rule{Allow: true, Access: AccessPublish, Pattern: `"quoted"/+`}},
		{`allow pub a"b`, Rule{Allow: true, Access: AccessPublish, Pattern: `a"b`}},
		{"allow pub 100%%/%u-%c", Rule{Allow: true, Access: AccessPublish, Pattern: "100%%/%u-%c"}},
		{"allow pub /", Rule{Allow: true, Access: AccessPublish, Pattern: "/"}},
		{"allow pub +", Rule{Allow: true, Access: AccessPublish, Pattern: "+"}},
		{"allow pub Zürich/温度", Rule{Allow: true, Access: AccessPublish, Pattern: "Zürich/温度"}},
	}
	for _, tc := range cases {
		got, err := ParseRule(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	cases := []struct {
		in, problem string
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"allow", "missing access and topic filter"},
		{"allow pub", "missing topic filter"},
		{"allow pub   ", "missing topic filter"},
		{"permit pub a", `unknown action "permit"`},
		{"Allow pub a", `unknown action "Allow"`},
		{"allow publish a", `unknown access "publish"`},
		{"allow PUB a", `unknown access "PUB"`},
		{"allow both a", `unknown access "both"`},
		{`allow pub ""`, "empty topic filter"},
		{`allow pub "a`, "not one Go double-quoted string"},
		{`allow pub "a" b`, "not one Go double-quoted string"},
		{"allow pub a/#/b", "'#' must be the last level"},
		{"allow pub #/b", "'#' must be the last level"},
		{"allow pub a#", "'#' must be a whole level"},
		{"allow pub a/b#", "'#' must be a whole level"},
		{"allow pub a+/b", "'+' must be a whole level"},
		{"allow pub %u+", "'+' must be a whole level"},
		{"allow pub a/%x", `unknown placeholder "%x"`},
		{"allow pub a/%U", `unknown placeholder "%U"`},
		{"allow pub a/%é", `unknown placeholder "%é"`},
		{"allow pub a/50%", "'%' at the end of a level"},
		{"allow pub a/50%/b", "'%' at the end of a level"},
		{"allow pub a\x00b", "U+0000"},
		{"allow pub a\xffb", "not valid UTF-8"},
		{`allow pub "a\x00"`, "U+0000"},
		{"allow sub $share/g/a/#", "without $share/{group}/"},
		{"allow sub $SHARE/g/a", "without $share/{group}/"},
		{"allow pub " + strings.Repeat("a", maxTopicLength+1), "longer than 65535 bytes"},
	}
	for _, tc := range cases {
		r, err := ParseRule(tc.in)
		if err == nil {
			t.Errorf("ParseRule(%q) = %+v, want an error about %s", tc.in, r, tc.problem)
			continue
		}
		if !errors.Is(err, ErrBadRule) || !strings.Contains(err.Error(), tc.problem) {
			t.Errorf("ParseRule(%q) error = %q, want ErrBadRule naming %q", tc.in, err, tc.problem)
		}
	}
}

func TestRuleString(t *testing.T) {
	cases := []struct {
		r    Rule
		want string
	}{
		{Rule{Allow: true, Access: AccessPublish, Pattern: "devices/%c/#"}, "allow pub devices/%c/#"},
		{Rule{Access: AccessSubscribe, Pattern: "#"}, "deny sub #"},
		{Rule{Allow: true, Access: AccessBoth, Pattern: "a b/c"}, "allow pubsub a b/c"},
		{Rule{Allow: true, Access: AccessBoth, Pattern: " a"}, `allow pubsub " a"`},
		{Rule{Allow: true, Access: AccessBoth, Pattern: "a\u00a0"}, `allow pubsub "a\u00a0"`},
		{Rule{Allow: true, Access: AccessBoth, Pattern: `"a`}, `allow pubsub "\"a"`},
		{Rule{Allow: true, Access: AccessBoth, Pattern: "a\nb"}, `allow pubsub "a\nb"`},
		{Rule{Allow: true, Access: AccessBoth, Pattern: ""}, `allow pubsub ""`},
		{Rule{Access: 0, Pattern: "a"}, "deny Access(0) a"},
	}
	for _, tc := range cases {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.r, got, tc.want)
		}
		if tc.r.Access == 0 || tc.r.Pattern == "" {
			continue
		}
		if back, err := ParseRule(tc.r.String()); err != nil || back != tc.r {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", tc.r.String(), back, err, tc.r)
		}
	}
}

func TestNewRulesErrors(t *testing.T) {
	cases := []struct {
		rule    Rule
		problem string
	}{
		{Rule{Allow: true, Pattern: "a"}, "access must be"},
		{Rule{Allow: true, Access: 4, Pattern: "a"}, "access must be"},
		{Rule{Allow: true, Access: -1, Pattern: "a"}, "access must be"},
		{Rule{Allow: true, Access: AccessBoth}, "empty topic filter"},
		{Rule{Allow: true, Access: AccessBoth, Pattern: "a/#/"}, "'#' must be the last level"},
		{Rule{Allow: true, Access: AccessBoth, Pattern: "a/%"}, "'%' at the end of a level"},
	}
	for _, tc := range cases {
		good := Rule{Allow: true, Access: AccessBoth, Pattern: "ok/#"}
		rs, err := NewRules([]Rule{good, tc.rule}, false)
		if err == nil {
			t.Errorf("NewRules(%+v) = %v, want an error about %s", tc.rule, rs, tc.problem)
			continue
		}
		if !errors.Is(err, ErrBadRule) || !strings.Contains(err.Error(), tc.problem) ||
			!strings.Contains(err.Error(), "rule 2 ") {
			t.Errorf("NewRules(%+v) error = %q, want ErrBadRule naming rule 2 and %q", tc.rule, err, tc.problem)
		}
	}
}

// check is one question to a rule set.
type check struct {
	op           Access // AccessPublish or AccessSubscribe
	user, client string
	topic        string // topic name or filter
	want         bool
}

func pub(client, topic string, want bool) check {
	return check{AccessPublish, "alice", client, topic, want}
}

func sub(client, filter string, want bool) check {
	return check{AccessSubscribe, "alice", client, filter, want}
}

func runChecks(t *testing.T, rs *Rules, checks []check) {
	t.Helper()
	for _, c := range checks {
		var got bool
		op := "Publish"
		if c.op == AccessPublish {
			got = rs.Publish(c.user, c.client, c.topic)
		} else {
			op = "Subscribe"
			got = rs.Subscribe(c.user, c.client, c.topic)
		}
		if got != c.want {
			t.Errorf("%s(%q, %q, %q) = %v, want %v", op, c.user, c.client, c.topic, got, c.want)
		}
	}
}

// TestRulesProductionExample is the production example configuration: deny by default, a
// client may use devices/{its client id}/#.
func TestRulesProductionExample(t *testing.T) {
	rs := mustRules(t, false, "allow pubsub devices/%c/#")
	runChecks(t, rs, []check{
		pub("c1", "devices/c1/x", true),
		pub("c1", "devices/c1", true), // '#' matches the parent level [MQTT-4.7.1-2]
		pub("c1", "devices/c1/a/b/c", true),
		pub("c1", "devices/c2/x", false),
		pub("c1", "devices/c10/x", false),
		pub("c1", "devices/c/x", false),
		pub("c1", "devices", false),
		pub("c1", "other/c1/x", false),
		pub("c1", "devices/c1/+", false), // not a topic name
		pub("c1", "devices/c1/#", false), // not a topic name
		pub("c1", "", false),
		sub("c1", "devices/c1/#", true),
		sub("c1", "devices/c1/+/y", true),
		sub("c1", "devices/c1/+", true),
		sub("c1", "devices/c1", true),
		sub("c1", "devices/c1/x", true),
		sub("c1", "$share/workers/devices/c1/+", true),
		sub("c1", "devices/#", false),
		sub("c1", "devices/+/x", false),
		sub("c1", "devices/+", false),
		sub("c1", "+/c1/x", false),
		sub("c1", "#", false),
		sub("c1", "+", false),
		sub("c1", "devices/c2/#", false),
		sub("c1", "$SYS/#", false), // default deny and no rule for $SYS
		sub("c1", "$SYS/broker/uptime", false),
		sub("c1", "devices/c1/#/x", false), // not a valid filter
		sub("c1", "devices/c1/x+", false),  // not a valid filter
		sub("c1", "", false),
		{AccessSubscribe, "alice", "c2", "devices/c2/#", true},
		{AccessSubscribe, "alice", "c2", "devices/c1/#", false},
	})
}

// TestRulesPlaceholders gives the rules hostile users and client ids: they never widen an
// allow rule, and they make a deny rule apply everywhere.
func TestRulesPlaceholders(t *testing.T) {
	allowDev := mustRules(t, false, "allow pubsub devices/%c/#", "allow pubsub home/%u/%c")
	denyDev := mustRules(t, true, "deny pubsub devices/%c/#")
	leading := mustRules(t, false, "allow pubsub %c/#", "allow pubsub $%u/x")
	inLevel := mustRules(t, false, "allow pubsub logs/%u-%c/#", "allow pub pct/100%%/%c")

	for _, tc := range []struct {
		name   string
		rs     *Rules
		checks []check
	}{
		{"client id +", allowDev, []check{
			{AccessPublish, "alice", "+", "devices/+/x", false},
			{AccessPublish, "alice", "+", "devices/c1/x", false},
			{AccessSubscribe, "alice", "+", "devices/+/#", false},
			{AccessSubscribe, "alice", "+", "devices/c1/#", false},
		}},
		{"client id #", allowDev, []check{
			{AccessSubscribe, "alice", "#", "devices/#", false},
			{AccessSubscribe, "alice", "#", "devices/#/x", false},
			{AccessPublish, "alice", "#", "devices/x", false},
		}},
		{"client id with a slash", allowDev, []check{
			{AccessPublish, "alice", "a/b", "devices/a/b/x", false},
			{AccessSubscribe, "alice", "a/b", "devices/a/b/#", false},
			{AccessSubscribe, "alice", "a/#", "devices/a/#", false},
			{AccessSubscribe, "alice", "a/+", "devices/a/+/#", false},
			{AccessSubscribe, "alice", "+/#", "devices/#", false},
		}},
		{"empty client id", allowDev, []check{
			{AccessPublish, "alice", "", "devices//x", false},
			{AccessSubscribe, "alice", "", "devices//#", false},
		}},
		{"client id with U+0000 or bad UTF-8", allowDev, []check{
			{AccessPublish, "alice", "a\x00", "devices/a\x00/x", false},
			{AccessPublish, "alice", "a\xff", "devices/a\xff/x", false},
		}},
		{"hostile user in a second placeholder", allowDev, []check{
			{AccessPublish, "a/b", "c1", "home/a/b/c1", false},
			{AccessPublish, "+", "c1", "home/+/c1", false},
			{AccessPublish, "", "c1", "home//c1", false},
			{AccessPublish, "bob", "c1", "home/bob/c1", true},
			// The user's rule is skipped; the client's own rule still applies.
			{AccessPublish, "a/b", "c1", "devices/c1/x", true},
		}},
		{"values are substituted once", allowDev, []check{
			{AccessPublish, "%c", "c1", "home/%c/c1", true},
			{AccessPublish, "%c", "c1", "home/c1/c1", false},
			{AccessPublish, "bob", "%u", "devices/%u/x", true},
			{AccessPublish, "bob", "%u", "devices/bob/x", false},
		}},
		{"ordinary values", allowDev, []check{
			{AccessPublish, "alice", "c 1", "devices/c 1/x", true},
			{AccessPublish, "alice", "Zürich", "devices/Zürich", true},
			{AccessPublish, "alice", "$c", "devices/$c/x", true}, // '$' inside the topic is plain
		}},
		{"deny rules fail closed", denyDev, []check{
			{AccessPublish, "alice", "c1", "devices/c1/x", false},
			{AccessPublish, "alice", "c1", "devices/c2/x", true},
			{AccessPublish, "alice", "c1", "other", true},
			{AccessPublish, "alice", "a/b", "devices/a/b/x", false},
			{AccessPublish, "alice", "a/b", "other", false},
			{AccessPublish, "alice", "+", "other", false},
			{AccessPublish, "alice", "", "other", false},
			{AccessSubscribe, "alice", "#", "other/#", false},
			{AccessSubscribe, "alice", "c1", "other/#", true},
			{AccessSubscribe, "alice", "c1", "#", false},
			{AccessSubscribe, "alice", "c1", "devices/+/x", false},
		}},
		{"leading placeholder never reaches $-topics", leading, []check{
			{AccessPublish, "alice", "c1", "c1/x", true},
			{AccessSubscribe, "alice", "c1", "c1/#", true},
			{AccessPublish, "alice", "$SYS", "$SYS/x", false},
			{AccessSubscribe, "alice", "$SYS", "$SYS/#", false},
			{AccessPublish, "bob", "c1", "$bob/x", true}, // the pattern itself starts with '$'
			{AccessPublish, "$bob", "c1", "$$bob/x", true},
		}},
		{"placeholders inside a level", inLevel, []check{
			{AccessPublish, "bob", "c1", "logs/bob-c1/x", true},
			{AccessSubscribe, "bob", "c1", "logs/bob-c1/#", true},
			{AccessSubscribe, "bob", "c1", "logs/+/#", false},
			{AccessPublish, "bob", "c1", "logs/bob-c2/x", false},
			{AccessPublish, "bob-c1", "", "logs/bob-c1/x", false},
			{AccessPublish, "bob", "-c1", "logs/bob--c1/x", true},
			{AccessPublish, "bob", "c1", "pct/100%/c1", true},
			{AccessPublish, "bob", "c1", "pct/100%%/c1", false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runChecks(t, tc.rs, tc.checks) })
	}
}

func TestRulesFirstMatchWins(t *testing.T) {
	t.Run("deny before allow", func(t *testing.T) {
		rs := mustRules(t, false, "deny pubsub a/secret/#", "allow pubsub a/#")
		runChecks(t, rs, []check{
			pub("c1", "a/x", true),
			pub("c1", "a/secret", false),
			pub("c1", "a/secret/x", false),
			sub("c1", "a/x/#", true),
			sub("c1", "a/#", false),   // reaches a/secret
			sub("c1", "a/+/x", false), // reaches a/secret/x
			sub("c1", "a/+", false),   // reaches a/secret
			sub("c1", "a/secret/+", false),
			sub("c1", "a/public/+", true),
		})
	})
	t.Run("allow before deny", func(t *testing.T) {
		rs := mustRules(t, false, "allow pubsub a/#", "deny pubsub a/secret/#")
		runChecks(t, rs, []check{
			pub("c1", "a/secret/x", true),
			sub("c1", "a/#", true),
			sub("c1", "a/secret/#", true),
			sub("c1", "#", false),
		})
	})
	t.Run("the first applicable rule of the same topic", func(t *testing.T) {
		rs := mustRules(t, true, "allow pub x/only", "deny pub x/+", "allow pub x/+")
		runChecks(t, rs, []check{
			pub("c1", "x/only", true),
			pub("c1", "x/other", false),
			pub("c1", "y", true),
		})
	})
	t.Run("conservative for unions of allow rules", func(t *testing.T) {
		rs := mustRules(t, false, "allow sub a/x", "allow sub a/+/#")
		runChecks(t, rs, []check{
			sub("c1", "a/x", true),
			sub("c1", "a/+", true), // a/+/# covers it: '#' matches the parent level
			sub("c1", "a/#", false),
		})
	})
}

// TestRulesDenyCarveOut denies a subtree in an otherwise open configuration: a wildcard
// subscription that reaches into it is refused.
func TestRulesDenyCarveOut(t *testing.T) {
	rs := mustRules(t, true, "deny sub secret/#")
	runChecks(t, rs, []check{
		sub("c1", "#", false),
		sub("c1", "+", false), // matches "secret"
		sub("c1", "+/x", false),
		sub("c1", "+/+/+", false),
		sub("c1", "secret", false),
		sub("c1", "secret/x", false),
		sub("c1", "secret/#", false),
		sub("c1", "$share/g/secret/x", false),
		sub("c1", "$share/g/#", false),
		sub("c1", "public/#", true),
		sub("c1", "public/+/x", true),
		sub("c1", "secretive/#", true),
		sub("c1", "x/secret/#", true),
		sub("c1", "$SYS/#", true),   // '#' does not reach $-topics [MQTT-4.7.2-1]
		pub("c1", "secret/x", true), // the rule is for subscribing only
	})
}

func TestRulesAccessKinds(t *testing.T) {
	rs := mustRules(t, false, "allow pub up/#", "allow sub down/#", "allow pubsub both/#", "deny pub both/ro/#",
		"allow pubsub both/ro/#")
	runChecks(t, rs, []check{
		pub("c1", "up/x", true),
		sub("c1", "up/x", false),
		sub("c1", "up/#", false),
		pub("c1", "down/x", false),
		sub("c1", "down/x", true),
		sub("c1", "down/#", true),
		pub("c1", "both/x", true),
		sub("c1", "both/x", true),
		pub("c1", "both/ro/x", true), // allow pubsub both/# comes first
	})
	rs = mustRules(t, false, "deny pub ro/#", "allow pubsub ro/#", "allow pubsub #")
	runChecks(t, rs, []check{
		pub("c1", "ro/x", false),
		sub("c1", "ro/x", true),
		sub("c1", "ro/#", true),
		sub("c1", "#", true),
		pub("c1", "x", true),
	})
}

func TestRulesSharedSubscriptions(t *testing.T) {
	rs := mustRules(t, false, "allow sub jobs/#", "allow sub $SYS/#")
	runChecks(t, rs, []check{
		sub("c1", "$share/workers/jobs/#", true),
		sub("c1", "$SHARE/workers/jobs/+", true), // any letter case, like Mochi
		sub("c1", "$share/workers/$SYS/#", true),
		sub("c1", "$share/workers/#", false),
		sub("c1", "$share/workers/other", false),
		sub("c1", "$share/workers", false), // no filter
		sub("c1", "$share/workers/", false),
		sub("c1", "$share/jobs/x", false),
	})
	open := DefaultRules()
	runChecks(t, open, []check{
		sub("c1", "$share/g/x", true),
		sub("c1", "$share/g", false),
		sub("c1", "$share/g/a/#/b", false),
	})
}

// TestRulesDollarTopics documents $SYS handling: with the default deny, $SYS/# is refused
// unless a rule allows it; '+' and '#' at the first level never reach $-topics.
func TestRulesDollarTopics(t *testing.T) {
	closed := mustRules(t, false, "allow pubsub #")
	runChecks(t, closed, []check{
		sub("c1", "#", true),
		pub("c1", "x", true),
		sub("c1", "$SYS/#", false),
		sub("c1", "$SYS/broker/uptime", false),
		pub("c1", "$SYS/x", false),
		sub("c1", "+/broker/uptime", true), // cannot match $SYS/broker/uptime
	})
	sys := mustRules(t, false, "allow sub $SYS/#", "allow pubsub +/#")
	runChecks(t, sys, []check{
		sub("c1", "$SYS/#", true),
		sub("c1", "$SYS/broker/+", true),
		pub("c1", "$SYS/x", false),
		sub("c1", "$other/#", false),
		sub("c1", "#", true),
	})
	open := mustRules(t, true, "deny sub #")
	runChecks(t, open, []check{
		sub("c1", "#", false),
		sub("c1", "x", false),
		sub("c1", "$SYS/#", true), // "deny sub #" does not reach $SYS either
	})
	shut := mustRules(t, true, "deny pubsub $SYS/#")
	runChecks(t, shut, []check{
		sub("c1", "$SYS/#", false),
		sub("c1", "$SYS", false),
		sub("c1", "#", true),
		pub("c1", "$SYS/x", false),
	})
}

func TestDefaultRules(t *testing.T) {
	runChecks(t, DefaultRules(), []check{
		pub("c1", "x", true),
		pub("c1", "a/b/c", true),
		pub("c1", "$SYS/x", true),
		sub("c1", "#", true),
		sub("c1", "$SYS/#", true),
		{AccessSubscribe, "", "", "+/x", true},
		pub("c1", "a/+", false), // not a topic name
		sub("c1", "#/a", false), // not a filter
	})
	var zero Rules
	runChecks(t, &zero, []check{pub("c1", "x", false), sub("c1", "x", false)})
	var none *Rules
	runChecks(t, none, []check{pub("c1", "x", false), sub("c1", "x", false)})
}

// TestCoversOverlaps pins down the two relations between a pattern P and a filter F: P covers
// F when P matches every topic F matches, and they overlap when some topic matches both.
func TestCoversOverlaps(t *testing.T) {
	cases := []struct {
		p, f             string
		covers, overlaps bool
	}{
		{"a", "a", true, true},
		{"a", "b", false, false},
		{"a", "a/b", false, false},
		{"a/b", "a", false, false},
		{"#", "a", true, true},
		{"#", "#", true, true},
		{"#", "+/+", true, true},
		{"#", "$SYS/x", false, false},
		{"#", "$SYS/#", false, false},
		{"+", "$SYS", false, false},
		{"+/#", "$SYS/#", false, false},
		{"+/#", "#", true, true},
		{"$SYS/#", "#", false, false},
		{"$SYS/#", "+/x", false, false},
		{"$SYS/#", "$SYS/x", true, true},
		{"$SYS/+", "$SYS/#", false, true},
		{"x/#", "x/$SYS", true, true}, // only the first level is special
		{"x/+", "x/$SYS", true, true},
		{"devices/c1/#", "devices/c1/+/state", true, true},
		{"devices/c1/#", "devices/c1/#", true, true},
		{"devices/c1/#", "devices/c1", true, true},
		{"devices/c1/#", "devices/+/state", false, true},
		{"devices/c1/#", "devices/#", false, true},
		{"devices/c1/#", "#", false, true},
		{"devices/c1/#", "devices/c2/#", false, false},
		{"devices/c1/#", "devices", false, false},
		{"devices/c1/#", "+", false, false},
		{"devices/c1/#", "+/#", false, true},
		{"a/#", "a/#", true, true},
		{"a/+", "a/#", false, true},
		{"a/+", "a", false, false},
		{"a/+/#", "a/+", true, true},
		{"a/+/#", "a/#", false, true},
		{"a/+/#", "a", false, false},
		{"a/+", "a/+/b", false, false},
		{"a/+/b", "a/+", false, false},
		{"a", "a/#", false, true},
		{"a", "#", false, true},
		{"a", "+", false, true},
		{"+", "a", true, true},
		{"+", "+", true, true},
		{"+", "#", false, true},
		{"+", "a/#", false, true},
		{"+/+", "+/+", true, true},
		{"+/x", "y/+", false, true},
		{"/", "/", true, true},
		{"+/+", "/", true, true},
		{"/#", "#", false, true},
		{"a//b", "a/+/b", false, true},
	}
	for _, tc := range cases {
		c, err := compilePattern(tc.p)
		if err != nil {
			t.Fatalf("compilePattern(%q): %v", tc.p, err)
		}
		if got := c.covers(tc.f, values{}); got != tc.covers {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.p, tc.f, got, tc.covers)
		}
		if got := c.overlaps(tc.f, values{}); got != tc.overlaps {
			t.Errorf("overlaps(%q, %q) = %v, want %v", tc.p, tc.f, got, tc.overlaps)
		}
	}
}

// smallFilters returns every valid filter of 1 to n levels made of the given levels.
func smallFilters(n int, levels ...string) []string {
	var out []string
	prev := []string{""}
	for range n {
		var next []string
		for _, p := range prev {
			if strings.HasSuffix(p, "#/") {
				continue
			}
			for _, l := range levels {
				f := l
				if p != "" {
					f = p[:len(p)-1] + "/" + l
				}
				next = append(next, f+"/")
			}
		}
		for _, f := range next {
			out = append(out, f[:len(f)-1])
		}
		prev = next
	}
	return out
}

// smallTopics returns every topic of 1 to n levels made of the levels a, b, $s and z. With
// filters of up to n-1 levels made of a, b, $s, + and #, they decide covers and overlaps
// exactly: z stands for every other level, and a deeper topic is matched like its first n
// levels.
func smallTopics(n int) []string {
	return smallFilters(n, "a", "b", "$s", "z")
}

// TestCoversOverlapsExhaustive checks covers and overlaps against their definitions, through
// wire.MatchTopic, for every pair of small filters.
func TestCoversOverlapsExhaustive(t *testing.T) {
	topics := smallTopics(4)
	filters := smallFilters(3, "a", "b", "$s", "+", "#")
	patterns := smallFilters(3, "a", "b", "$s", "+", "#", "%u", "%c")
	v := values{user: "a", client: "$s"} // "$s" as client makes no first-level %c usable
	expand := strings.NewReplacer("%u", v.user, "%c", v.client)
	matches := func(filter string) []bool {
		m := make([]bool, len(topics))
		for i, topic := range topics {
			m[i] = wire.MatchTopic(filter, topic)
		}
		return m
	}
	fm := make([][]bool, len(filters))
	for i, f := range filters {
		fm[i] = matches(f)
	}
	n := 0
	for _, p := range patterns {
		c, err := compilePattern(p)
		if err != nil {
			t.Fatalf("compilePattern(%q): %v", p, err)
		}
		if !c.usable(v) {
			continue
		}
		pm := matches(expand.Replace(p))
		for fi, f := range filters {
			covers, overlaps := true, false
			for i := range topics {
				if fm[fi][i] && !pm[i] {
					covers = false
				}
				if fm[fi][i] && pm[i] {
					overlaps = true
				}
			}
			if got := c.covers(f, v); got != covers {
				t.Errorf("covers(%q, %q) = %v, want %v", p, f, got, covers)
			}
			if got := c.overlaps(f, v); got != overlaps {
				t.Errorf("overlaps(%q, %q) = %v, want %v", p, f, got, overlaps)
			}
			n++
		}
	}
	if n < 10000 {
		t.Fatalf("only %d pairs checked", n)
	}
}

// refExpand fills in a pattern's placeholders, or reports that a value is unusable.
func refExpand(pattern, user, client string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		if pattern[i] != '%' {
			b.WriteByte(pattern[i])
			continue
		}
		i++
		var val string
		switch pattern[i] {
		case '%':
			b.WriteByte('%')
			continue
		case 'u':
			val = user
		case 'c':
			val = client
		}
		if val == "" || strings.ContainsAny(val, "/+#\x00") || !utf8.ValidString(val) ||
			(b.Len() == 0 && val[0] == '$') {
			return "", false
		}
		b.WriteString(val)
	}
	return b.String(), true
}

// refDecide is the verdict of rules on one topic name, by the definition: the first rule of
// the operation whose pattern matches decides.
func refDecide(rules []Rule, defaultAllow bool, op Access, user, client, topic string) bool {
	for _, r := range rules {
		if r.Access&op == 0 {
			continue
		}
		p, ok := refExpand(r.Pattern, user, client)
		if !ok {
			if r.Allow {
				continue
			}
			return false
		}
		if wire.MatchTopic(p, topic) {
			return r.Allow
		}
	}
	return defaultAllow
}

// TestRulesRandomSets checks random rule sets against the per-topic definition: Publish and
// Subscribe with a topic name agree with it, and an allowed filter matches no refused topic.
func TestRulesRandomSets(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	topics := smallTopics(4)
	filters := smallFilters(3, "a", "b", "$s", "+", "#")
	patterns := smallFilters(3, "a", "b", "$s", "+", "#", "%u", "%c")
	ids := []string{"a", "b", "$s", "+", "a/b", ""}
	for range 300 {
		rules := make([]Rule, 1+rng.IntN(4))
		for i := range rules {
			rules[i] = Rule{
				Allow:   rng.IntN(2) == 0,
				Access:  Access(1 + rng.IntN(3)),
				Pattern: patterns[rng.IntN(len(patterns))],
			}
		}
		defaultAllow := rng.IntN(2) == 0
		rs, err := NewRules(rules, defaultAllow)
		if err != nil {
			t.Fatal(err)
		}
		user, client := ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]
		refused := make([]bool, len(topics))
		for i, topic := range topics {
			if got, want := rs.Publish(user, client, topic), refDecide(rules, defaultAllow, AccessPublish, user, client, topic); got != want {
				t.Fatalf("%v default %v: Publish(%q, %q, %q) = %v, want %v", rules, defaultAllow, user, client, topic, got, want)
			}
			want := refDecide(rules, defaultAllow, AccessSubscribe, user, client, topic)
			if got := rs.Subscribe(user, client, topic); got != want {
				t.Fatalf("%v default %v: Subscribe(%q, %q, %q) = %v, want %v", rules, defaultAllow, user, client, topic, got, want)
			}
			refused[i] = !want
		}
		for _, f := range filters {
			if !rs.Subscribe(user, client, f) {
				continue
			}
			for i, topic := range topics {
				if refused[i] && wire.MatchTopic(f, topic) {
					t.Fatalf("%v default %v: Subscribe(%q, %q, %q) allowed, but topic %q is refused",
						rules, defaultAllow, user, client, f, topic)
				}
			}
		}
	}
}

// fillFilter makes a topic name from filter: each '+' takes the next of fills, and '#' takes
// depth of them.
func fillFilter(filter string, fills []string, depth int) string {
	next := func() string {
		if len(fills) == 0 {
			return "x"
		}
		s := fills[0]
		fills = fills[1:]
		return s
	}
	var out []string
	for _, l := range strings.Split(filter, "/") {
		switch l {
		case "+":
			out = append(out, next())
		case "#":
			for range depth {
				out = append(out, next())
			}
		default:
			out = append(out, l)
		}
	}
	return strings.Join(out, "/")
}

func FuzzCoversImpliesMatch(f *testing.F) {
	seeds := []struct{ p, f, fill, user, client string }{
		{"devices/%c/#", "devices/c1/+/state", "x", "alice", "c1"},
		{"devices/%c/#", "devices/+/state", "c1/c2", "alice", "c1"},
		{"#", "+/x", "$SYS", "u", "c"},
		{"+/#", "#", "a/$b/c", "u", "c"},
		{"$SYS/#", "$SYS/+", "a", "u", "c"},
		{"a/+/#", "a/#", "/b", "u", "c"},
		{"logs/%u-%c/+", "logs/bob-c1/+", "x", "bob", "c1"},
		{"%u/#", "+/#", "$a/b", "a", "c"},
	}
	for _, s := range seeds {
		f.Add(s.p, s.f, s.fill, s.user, s.client, uint8(2))
	}
	f.Fuzz(func(t *testing.T, pattern, filter, fill, user, client string, depth uint8) {
		c, err := compilePattern(pattern)
		if err != nil || !validTopic(filter, true) || !c.usable(values{user, client}) {
			return
		}
		v := values{user, client}
		expanded, ok := refExpand(pattern, user, client)
		if !ok {
			t.Fatalf("usable values %q, %q are unusable for the reference with %q", user, client, pattern)
		}
		covers, overlaps := c.covers(filter, v), c.overlaps(filter, v)
		if covers && !overlaps {
			t.Fatalf("covers(%q, %q) without overlapping", pattern, filter)
		}
		if !wire.IsWildcard(filter) {
			want := wire.MatchTopic(expanded, filter)
			if covers != want || overlaps != want {
				t.Fatalf("pattern %q, topic %q: covers %v, overlaps %v, MatchTopic %v", pattern, filter, covers, overlaps, want)
			}
		}
		var fills []string
		for _, s := range strings.Split(fill, "/") {
			if s = strings.Map(func(r rune) rune {
				if r == '+' || r == '#' || r == 0 {
					return -1
				}
				return r
			}, s); utf8.ValidString(s) {
				fills = append(fills, s)
			}
		}
		for k := range 4 {
			topic := fillFilter(filter, fills[min(k, len(fills)):], int(depth%8)+k-1)
			if !validTopic(topic, false) || !wire.MatchTopic(filter, topic) {
				continue
			}
			m := wire.MatchTopic(expanded, topic)
			if covers && !m {
				t.Fatalf("covers(%q, %q) but %q matches the filter, not the pattern %q", pattern, filter, topic, expanded)
			}
			if m && !overlaps {
				t.Fatalf("!overlaps(%q, %q) but %q matches both", pattern, filter, topic)
			}
		}
	})
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"allow pub devices/%c/#", "deny sub #", "allow pubsub sensors/+/temp", `allow pub " a "`,
		"allow pub 100%%", "deny pub a/%x", "allow pub a/#/b", "allow", "", `deny sub "\x00"`,
		"allow pub a\u00a0", "allow sub $share/g/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s) // must not panic on any input
		if err != nil {
			if !errors.Is(err, ErrBadRule) {
				t.Fatalf("ParseRule(%q) error %v does not wrap ErrBadRule", s, err)
			}
			return
		}
		if _, err := NewRules([]Rule{r}, false); err != nil {
			t.Fatalf("ParseRule(%q) = %+v, which NewRules refuses: %v", s, r, err)
		}
		back, err := ParseRule(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRule(%q) = %+v; String %q parses as %+v, %v", s, r, r.String(), back, err)
		}
	})
}

func BenchmarkRulesPublish(b *testing.B) {
	rs := mustRules(b, false, "deny pubsub devices/+/secret/#", "allow pub sensors/+/temp", "allow pubsub devices/%c/#")
	b.ReportAllocs()
	for b.Loop() {
		if !rs.Publish("alice", "c1", "devices/c1/state/now") {
			b.Fatal("refused")
		}
	}
}

func BenchmarkRulesSubscribe(b *testing.B) {
	rs := mustRules(b, false, "deny pubsub devices/+/secret/#", "allow pub sensors/+/temp", "allow pubsub devices/%c/#")
	b.ReportAllocs()
	for b.Loop() {
		if !rs.Subscribe("alice", "c1", "$share/g/devices/c1/state/+") {
			b.Fatal("refused")
		}
	}
}
