package wire_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/roomq/roomq/wire"
)

// nameCases are the naming rules of docs/protocol.md ("Topic namespace"): one topic level of
// 1–128 characters, no '/', '+', '#', ':', '{', '}', no control characters, no leading '$'.
var nameCases = []struct {
	name  string
	input string
	valid bool
}{
	// Length, counted in characters (runes), not bytes.
	{"empty", "", false},
	{"one char", "a", true},
	{"128 ascii", strings.Repeat("a", 128), true},
	{"129 ascii", strings.Repeat("a", 129), false},
	{"128 two-byte runes", strings.Repeat("é", 128), true},
	{"129 two-byte runes", strings.Repeat("é", 129), false},
	{"128 four-byte runes", strings.Repeat("🎉", 128), true},
	{"129 four-byte runes", strings.Repeat("🎉", 129), false},
	{"128 mixed runes", strings.Repeat("a世", 64), true},
	{"129 mixed runes", strings.Repeat("a世", 64) + "b", false},

	// Forbidden characters, alone, leading, inside and trailing.
	{"slash", "/", false},
	{"slash inside", "a/b", false},
	{"slash leading", "/a", false},
	{"slash trailing", "a/", false},
	{"plus", "+", false},
	{"plus inside", "a+b", false},
	{"hash", "#", false},
	{"hash inside", "a#b", false},
	{"colon", ":", false},
	{"colon inside", "a:b", false},
	{"open brace", "{", false},
	{"open brace inside", "a{b", false},
	{"close brace", "}", false},
	{"close brace inside", "a}b", false},
	{"forbidden as last of 128", strings.Repeat("a", 127) + "#", false},

	// Control characters: C0, DEL and C1.
	{"NUL", "\x00", false},
	{"NUL inside", "a\x00b", false},
	{"SOH", "a\x01b", false},
	{"tab", "a\tb", false},
	{"newline", "a\nb", false},
	{"carriage return", "a\rb", false},
	{"US", "a\x1fb", false},
	{"DEL", "a\x7fb", false},
	{"C1 U+0080", "a\u0080b", false},
	{"NEL U+0085", "a\u0085b", false},
	{"C1 U+009F", "a\u009fb", false},

	// Leading '$' only.
	{"leading dollar", "$x", false},
	{"only dollar", "$", false},
	{"dollar inside", "a$", true},
	{"dollar SYS", "$SYS", false},

	// Invalid UTF-8.
	{"invalid byte", "\xff", false},
	{"invalid byte inside", "a\xffb", false},
	{"truncated rune", "a\xe4\xb8", false},
	{"overlong slash", "a\xc0\xafb", false},
	{"encoded surrogate", "a\xed\xa0\x80b", false},

	// Allowed.
	{"ascii word", "general", true},
	{"digits", "12345", true},
	{"space inside", "a b", true},
	{"only space", " ", true},
	{"leading and trailing space", " general ", true},
	{"no-break space", "a\u00a0b", true},
	{"unicode", "Zürich-チャット", true},
	{"emoji", "🎉party", true},
	{"punctuation", "a.b-c_d~e!f@g%h&i*j(k)l=m;n'o\"p,q<r>s?t[u]v\\w|x`y^z", true},
	{"replacement char", "\ufffd", true},
	{"dot", ".", true},
	{"dots", "..", true},
}

func TestValidName(t *testing.T) {
	for _, tc := range nameCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := wire.ValidName(tc.input); got != tc.valid {
				t.Errorf("ValidName(%q) = %v, want %v", tc.input, got, tc.valid)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range nameCases {
		t.Run(tc.name, func(t *testing.T) {
			err := wire.CheckName("room", tc.input)
			if tc.valid {
				if err != nil {
					t.Fatalf("CheckName(room, %q) = %v, want nil", tc.input, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckName(room, %q) = nil, want an invalidName error", tc.input)
			}
			if !errors.Is(err, wire.ErrInvalidName) {
				t.Errorf("errors.Is(%v, ErrInvalidName) = false", err)
			}
			if c := wire.CodeOf(err); c != wire.CodeInvalidName {
				t.Errorf("CodeOf(%v) = %q, want %q", err, c, wire.CodeInvalidName)
			}
			if !strings.Contains(err.Error(), "room") {
				t.Errorf("error %q does not name the kind", err)
			}
		})
	}
}

func TestCheckNameKind(t *testing.T) {
	err := wire.CheckName("user", "a/b")
	if err == nil || !strings.Contains(err.Error(), "invalid user name") {
		t.Fatalf("CheckName(user, a/b) = %v, want an error naming the user kind", err)
	}
	if got := wire.AsError(err); got.Code != wire.CodeInvalidName {
		t.Errorf("AsError(%v).Code = %q, want %q", err, got.Code, wire.CodeInvalidName)
	}
}

func FuzzValidName(f *testing.F) {
	for _, tc := range nameCases {
		f.Add(tc.input)
	}
	f.Fuzz(func(t *testing.T, s string) {
		valid := wire.ValidName(s)
		if (wire.CheckName("room", s) == nil) != valid {
			t.Fatalf("CheckName and ValidName disagree on %q", s)
		}
		if !valid {
			return
		}
		if !utf8.ValidString(s) {
			t.Fatalf("valid name %q is not UTF-8", s)
		}
		if n := utf8.RuneCountInString(s); n < 1 || n > wire.MaxNameLength {
			t.Fatalf("valid name %q has %d characters", s, n)
		}
		if strings.ContainsAny(s, "/+#:{}") {
			t.Fatalf("valid name %q contains a forbidden character", s)
		}
		if strings.HasPrefix(s, "$") {
			t.Fatalf("valid name %q starts with $", s)
		}
		for _, r := range s {
			if unicode.IsControl(r) {
				t.Fatalf("valid name %q contains control character %U", s, r)
			}
		}
		// A valid name is exactly one topic level in every namespace.
		for _, c := range []struct {
			topic string
			kind  wire.TopicKind
		}{
			{wire.RoomTopic(s), wire.TopicRoom},
			{wire.RoomEventsTopic(s), wire.TopicRoomEvents},
			{wire.UserInboxTopic(s), wire.TopicUserInbox},
			{wire.UserEventsTopic(s), wire.TopicUserEvents},
			{wire.UserRepliesPrefix(s) + "c", wire.TopicUserReplies},
			{wire.PresenceTopic(s), wire.TopicPresence},
		} {
			if got := wire.ParseTopic(c.topic); got.Kind != c.kind || got.Name != s {
				t.Fatalf("ParseTopic(%q) = %+v, want kind %d name %q", c.topic, got, c.kind, s)
			}
		}
	})
}
