package acl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/roomq/roomq/wire"
)

// maxTopicLength is the longest topic name or filter, in bytes [MQTT-4.7.3-3].
const maxTopicLength = 65535

// Access is the set of operations a topic ACL rule applies to: bit flags.
type Access int

// Operations of a Rule.
const (
	// AccessPublish is publishing to a topic name.
	AccessPublish Access = 1 << iota
	// AccessSubscribe is subscribing with a topic filter (and receiving what it matches).
	AccessSubscribe
	// AccessBoth is publishing and subscribing.
	AccessBoth = AccessPublish | AccessSubscribe
)

// String returns the keyword of a in the text form of rules: pub, sub or pubsub.
func (a Access) String() string {
	switch a {
	case AccessPublish:
		return "pub"
	case AccessSubscribe:
		return "sub"
	case AccessBoth:
		return "pubsub"
	}
	return "Access(" + strconv.Itoa(int(a)) + ")"
}

// Rule allows or denies operations on the topics a pattern matches.
//
// Pattern is an MQTT topic filter ('+' and '#' as whole levels, '#' last) in which %u stands
// for the user and %c for the client id, anywhere inside a level ("devices/%c/#",
// "logs/%u-%c"); %% is a literal '%', and any other '%' sequence is an error. A value is
// substituted as it is, once: a user named "%c" is not expanded again.
//
// A value that cannot be one topic level (empty, containing '/', '+', '#' or U+0000, not
// valid UTF-8), or that would start the rule's first level with '$' when the pattern itself
// does not, is unusable: a client could otherwise widen "devices/%c/#" with the client id
// "a/#" or reach $SYS with the client id "$SYS". Every check fails closed: an allow rule that
// uses an unusable value is skipped, and a deny rule that uses one applies to every topic and
// filter of its operations.
type Rule struct {
	// Allow is true for an allow rule and false for a deny rule.
	Allow bool
	// Access is the operations the rule applies to; it must not be zero.
	Access Access
	// Pattern is the topic filter, with placeholders.
	Pattern string
}

// String returns the text form of r that ParseRule reads back, such as
// "allow pub devices/%c/#". The pattern is quoted (Go syntax) when it would not survive
// otherwise: empty, with surrounding white space, starting with '"', or with characters that
// are not printable.
func (r Rule) String() string {
	action := "deny"
	if r.Allow {
		action = "allow"
	}
	p := r.Pattern
	if p == "" || p != strings.TrimSpace(p) || p[0] == '"' || !utf8.ValidString(p) ||
		strings.ContainsFunc(p, func(c rune) bool { return c != ' ' && !unicode.IsPrint(c) }) {
		p = strconv.Quote(p)
	}
	return action + " " + r.Access.String() + " " + p
}

// ParseRule reads the text form of a rule, as written in configuration files:
//
//	allow|deny pub|sub|pubsub FILTER
//
// for example "allow pub devices/%c/#", "deny sub #" or "allow pubsub sensors/+/temp".
// Keywords are lower case and separated by white space. FILTER is the rest of the line
// without surrounding white space; it may contain spaces, and may be written as a Go
// double-quoted string to keep surrounding white space or write unprintable characters. The
// filter is checked like NewRules does; errors wrap ErrBadRule and name the problem.
func ParseRule(s string) (Rule, error) {
	bad := func(format string, args ...any) (Rule, error) {
		return Rule{}, fmt.Errorf("%w %q: %s", ErrBadRule, s, fmt.Sprintf(format, args...))
	}
	const form = `want "allow|deny pub|sub|pubsub FILTER"`
	action, rest := cutSpace(strings.TrimSpace(s))
	if action == "" {
		return bad("empty; %s", form)
	}
	var r Rule
	switch action {
	case "allow":
		r.Allow = true
	case "deny":
	default:
		return bad("unknown action %q; %s", action, form)
	}
	access, rest := cutSpace(rest)
	switch access {
	case "pub":
		r.Access = AccessPublish
	case "sub":
		r.Access = AccessSubscribe
	case "pubsub":
		r.Access = AccessBoth
	case "":
		return bad("missing access and topic filter; %s", form)
	default:
		return bad("unknown access %q; want pub, sub or pubsub", access)
	}
	r.Pattern = rest
	if rest == "" {
		return bad("missing topic filter; %s", form)
	}
	if rest[0] == '"' {
		p, err := strconv.Unquote(rest)
		if err != nil {
			return bad("topic filter %s is not one Go double-quoted string", rest)
		}
		r.Pattern = p
	}
	if _, err := compilePattern(r.Pattern); err != nil {
		return bad("%v", err)
	}
	return r, nil
}

// cutSpace returns the text of s before its first white space, and the rest of s after that
// white space.
func cutSpace(s string) (word, rest string) {
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeftFunc(s[i:], unicode.IsSpace)
}

// Rules are ordered topic ACL rules for plain topics (those outside rooms/, users/,
// presence/ and $rpc/, which Policy judges). For each operation the rules are tried in order;
// the first rule whose Access covers the operation and whose pattern matches decides, and
// when none matches the default decides. Rules do not know the reserved namespaces: they
// judge a filter such as # by the rules alone, so the caller decides which topics and
// filters to ask about.
//
// Patterns match as MQTT filters do: by [MQTT-4.7.2-1] a pattern starting with '+' or '#'
// does not match topics starting with '$', so "allow pubsub #" does not open $SYS and "deny
// sub #" does not close it. With the default deny, $SYS/# is refused unless a rule such as
// "allow sub $SYS/#" allows it; with the default allow, only a rule such as "deny pubsub
// $SYS/#" refuses it.
//
// Rules are immutable and safe for concurrent use. The zero Rules, and a nil *Rules, have no
// rules and deny everything; use DefaultRules or NewRules.
type Rules struct {
	rules        []compiledRule
	defaultAllow bool
}

// NewRules checks rules and returns them in force, in order, with defaultAllow deciding what
// no rule matches. Each rule needs a known, non-zero Access and a valid pattern: a non-empty
// MQTT topic filter of at most 65535 bytes of valid UTF-8 without U+0000, with '+' and '#'
// as whole levels and '#' only last, no "$share/" prefix (Subscribe judges the filter inside
// a shared subscription), and only %u, %c and %% after a '%'. Errors wrap ErrBadRule.
func NewRules(rules []Rule, defaultAllow bool) (*Rules, error) {
	rs := &Rules{rules: make([]compiledRule, 0, len(rules)), defaultAllow: defaultAllow}
	for i, r := range rules {
		if r.Access&^AccessBoth != 0 || r.Access == 0 {
			return nil, fmt.Errorf("%w %d (%s): access must be AccessPublish, AccessSubscribe or AccessBoth",
				ErrBadRule, i+1, r)
		}
		c, err := compilePattern(r.Pattern)
		if err != nil {
			return nil, fmt.Errorf("%w %d (%s): %v", ErrBadRule, i+1, r, err)
		}
		c.allow, c.access = r.Allow, r.Access
		rs.rules = append(rs.rules, c)
	}
	return rs, nil
}

// DefaultRules returns the development rules: no rules, every plain topic allowed, so any
// MQTT client works out of the box.
func DefaultRules() *Rules {
	return &Rules{defaultAllow: true}
}

// Publish reports whether the client clientID of user may publish to the topic name topic.
// A rule decides when its pattern, with the placeholders filled in, matches topic. A topic
// that is not a valid topic name (empty, with '+', '#' or U+0000, not valid UTF-8, too long)
// is refused.
func (r *Rules) Publish(user, clientID, topic string) bool {
	if r == nil || !validTopic(topic, false) {
		return false
	}
	v := values{user: user, client: clientID}
	for i := range r.rules {
		c := &r.rules[i]
		if c.access&AccessPublish == 0 {
			continue
		}
		if !c.usable(v) {
			if c.allow {
				continue
			}
			return false // a deny rule with an unusable value fails closed
		}
		// For a topic name, which has no wildcards, covering it is matching it.
		if c.covers(topic, v) {
			return c.allow
		}
	}
	return r.defaultAllow
}

// Subscribe reports whether the client clientID of user may subscribe with filter. The filter
// of a shared subscription $share/{group}/{filter} is judged; "$share/{group}" without a
// filter, and filters that are not valid MQTT filters, are refused.
//
// As a filter stands for many topics, an allow rule decides only when its pattern matches
// every topic the filter matches (allow devices/c1/# decides devices/c1/+/state, not
// devices/+/state nor #), and a deny rule decides as soon as its pattern matches one of them
// (deny secret/# refuses #). So an allowed filter never matches a topic that Subscribe
// refuses on its own. The answer is conservative: a filter that no single allow rule covers
// goes on to the later rules and the default, even when several allow rules together would
// cover it.
func (r *Rules) Subscribe(user, clientID, filter string) bool {
	if r == nil {
		return false
	}
	if f, ok := wire.SharedFilter(filter); ok {
		filter = f
	} else if hasSharePrefix(filter) {
		return false
	}
	if !validTopic(filter, true) {
		return false
	}
	v := values{user: user, client: clientID}
	for i := range r.rules {
		c := &r.rules[i]
		if c.access&AccessSubscribe == 0 {
			continue
		}
		if !c.usable(v) {
			if c.allow {
				continue
			}
			return false // a deny rule with an unusable value fails closed
		}
		if c.allow && c.covers(filter, v) {
			return true
		}
		if !c.allow && c.overlaps(filter, v) {
			return false
		}
	}
	return r.defaultAllow
}

// hasSharePrefix reports whether filter starts with "$share/" in any letter case.
func hasSharePrefix(filter string) bool {
	const prefix = "$share/"
	return len(filter) >= len(prefix) && strings.EqualFold(filter[:len(prefix)], prefix)
}

// validTopic reports whether s is a valid topic filter (filter true) or topic name: at least
// one byte [MQTT-4.7.3-1], no U+0000 [MQTT-4.7.3-2], at most 65535 bytes [MQTT-4.7.3-3], valid
// UTF-8 [MQTT-1.5.3-1]; in a filter '+' and '#' are whole levels [MQTT-4.7.1-3] and '#' is
// last [MQTT-4.7.1-2], and a topic name has neither.
func validTopic(s string, filter bool) bool {
	if s == "" || len(s) > maxTopicLength || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return false
	}
	if !filter {
		return !strings.ContainsAny(s, "+#")
	}
	for rest, more := s, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		if level == "#" && more {
			return false
		}
		if level != "+" && level != "#" && strings.ContainsAny(level, "+#") {
			return false
		}
	}
	return true
}

// values are the user and client id the placeholders stand for.
type values struct {
	user, client string
}

// usableValue reports whether s can stand for a placeholder: exactly one topic level, not
// empty, of valid UTF-8, without '/', '+', '#' or U+0000.
func usableValue(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.ContainsAny(s, "/+#\x00")
}

// part is a piece of a pattern level: literal text, or a placeholder.
type part struct {
	text string
	// ph is 'u' for the user, 'c' for the client id, 0 for literal text.
	ph byte
}

// patternLevel is one level of a compiled pattern.
type patternLevel struct {
	// wild is '+' or '#' for a wildcard level, 0 otherwise.
	wild byte
	// parts make up a level that is not a wildcard; one literal part when it has no
	// placeholder.
	parts []part
}

// equal reports whether the level, with the placeholders filled in, is s.
func (l *patternLevel) equal(s string, v values) bool {
	for _, p := range l.parts {
		text := p.text
		switch p.ph {
		case 'u':
			text = v.user
		case 'c':
			text = v.client
		}
		if !strings.HasPrefix(s, text) {
			return false
		}
		s = s[len(text):]
	}
	return s == ""
}

// compiledRule is a Rule ready to match.
type compiledRule struct {
	allow  bool
	access Access
	levels []patternLevel
	// dollar is true when the pattern starts with '$'.
	dollar bool
	// user and client are true when the pattern uses %u and %c.
	user, client bool
	// firstPH is true when the pattern starts with a placeholder.
	firstPH bool
}

// compilePattern checks a rule pattern and splits it into levels. Only the match fields are
// set. Its errors name the problem, for ErrBadRule messages.
func compilePattern(pattern string) (compiledRule, error) {
	var c compiledRule
	switch {
	case pattern == "":
		return c, errors.New("empty topic filter") // [MQTT-4.7.3-1]
	case len(pattern) > maxTopicLength:
		return c, fmt.Errorf("topic filter longer than %d bytes", maxTopicLength) // [MQTT-4.7.3-3]
	case !utf8.ValidString(pattern):
		return c, fmt.Errorf("topic filter %q is not valid UTF-8", pattern) // [MQTT-1.5.3-1]
	case strings.IndexByte(pattern, 0) >= 0:
		return c, fmt.Errorf("topic filter %q contains U+0000", pattern) // [MQTT-4.7.3-2]
	case hasSharePrefix(pattern):
		return c, fmt.Errorf("topic filter %q: write the filter of a shared subscription without $share/{group}/", pattern)
	}
	c.dollar = pattern[0] == '$'
	for rest, more := pattern, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		switch {
		case level == "#" && more:
			return c, fmt.Errorf("topic filter %q: '#' must be the last level", pattern) // [MQTT-4.7.1-2]
		case level == "#" || level == "+":
			c.levels = append(c.levels, patternLevel{wild: level[0]})
			continue
		case strings.ContainsRune(level, '#'):
			return c, fmt.Errorf("topic filter %q: '#' must be a whole level", pattern) // [MQTT-4.7.1-2]
		case strings.ContainsRune(level, '+'):
			return c, fmt.Errorf("topic filter %q: '+' must be a whole level", pattern) // [MQTT-4.7.1-3]
		}
		parts, err := parseLevel(level)
		if err != nil {
			return c, fmt.Errorf("topic filter %q: %v", pattern, err)
		}
		for _, p := range parts {
			c.user = c.user || p.ph == 'u'
			c.client = c.client || p.ph == 'c'
		}
		if len(c.levels) == 0 && len(parts) > 0 && parts[0].ph != 0 {
			c.firstPH = true
		}
		c.levels = append(c.levels, patternLevel{parts: parts})
	}
	return c, nil
}

// parseLevel splits a pattern level without wildcards into literal text and placeholders.
func parseLevel(level string) ([]part, error) {
	var parts []part
	var lit strings.Builder
	for i := 0; i < len(level); i++ {
		if level[i] != '%' {
			lit.WriteByte(level[i])
			continue
		}
		if i+1 == len(level) {
			return nil, errors.New("'%' at the end of a level; write %% for a literal '%'")
		}
		i++
		switch level[i] {
		case '%':
			lit.WriteByte('%')
			continue
		case 'u', 'c':
		default:
			r, _ := utf8.DecodeRuneInString(level[i:])
			return nil, fmt.Errorf("unknown placeholder %q; want %%u, %%c or %%%% for a literal '%%'", "%"+string(r))
		}
		if lit.Len() > 0 {
			parts = append(parts, part{text: lit.String()})
			lit.Reset()
		}
		parts = append(parts, part{ph: level[i]})
	}
	if lit.Len() > 0 || len(parts) == 0 {
		parts = append(parts, part{text: lit.String()})
	}
	return parts, nil
}

// usable reports whether the values the rule uses can stand for its placeholders. A value
// that would start the first level of the pattern with '$' is unusable: it would carry the
// rule into $-topics, which a pattern without a leading '$' never reaches [MQTT-4.7.2-1].
func (c *compiledRule) usable(v values) bool {
	if c.user && !usableValue(v.user) || c.client && !usableValue(v.client) {
		return false
	}
	if c.firstPH {
		first := v.user
		if c.levels[0].parts[0].ph == 'c' {
			first = v.client
		}
		return first[0] != '$'
	}
	return true
}

// covers reports whether every topic that the valid filter f matches is matched by the
// rule's pattern with v filled in. For a topic name f, which has no wildcards, this is whether
// the pattern matches f. The values must be usable.
func (c *compiledRule) covers(f string, v values) bool {
	rest, more := f, true
	for i := range c.levels {
		pl := &c.levels[i]
		if pl.wild == '#' {
			// '#' matches every continuation and the parent level [MQTT-4.7.1-2], but a
			// leading '#' no topic starting with '$' [MQTT-4.7.2-1].
			return i > 0 || f[0] != '$'
		}
		if !more {
			return false // f's topics end here, the pattern needs another level
		}
		var fl string
		fl, rest, more = strings.Cut(rest, "/")
		switch {
		case fl == "#":
			// f matches any depth from here, and the parent level [MQTT-4.7.1-2]: only '#'
			// covers that, except that a leading "+/#" matches every topic a leading '#'
			// matches (no topic has zero levels, and neither matches '$' [MQTT-4.7.2-1]).
			return i == 0 && len(c.levels) == 2 && pl.wild == '+' && c.levels[1].wild == '#'
		case pl.wild == '+':
			if i == 0 && strings.HasPrefix(fl, "$") {
				return false // [MQTT-4.7.2-1]
			}
		case fl == "+" || !pl.equal(fl, v):
			return false
		}
	}
	return !more
}

// overlaps reports whether some topic is matched both by the valid filter f and by the rule's
// pattern with v filled in. The values must be usable.
func (c *compiledRule) overlaps(f string, v values) bool {
	rest, more := f, true
	for i := range c.levels {
		pl := &c.levels[i]
		if pl.wild == '#' {
			return i > 0 || f[0] != '$' // [MQTT-4.7.2-1]
		}
		if !more {
			return false // f's topics end here, the pattern needs another level
		}
		var fl string
		fl, rest, more = strings.Cut(rest, "/")
		switch {
		case fl == "#" || fl == "+":
			if i == 0 && c.dollar {
				return false // [MQTT-4.7.2-1]
			}
			if fl == "#" {
				return true // any continuation of the pattern, or its parent, matches
			}
		case pl.wild == '+':
			if i == 0 && strings.HasPrefix(fl, "$") {
				return false // [MQTT-4.7.2-1]
			}
		case !pl.equal(fl, v):
			return false
		}
	}
	// The pattern ends here: f must end too, or go on with '#', which matches the parent.
	return !more || rest == "#"
}
