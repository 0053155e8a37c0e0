package wire

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLength is the longest room or user name, in characters.
const MaxNameLength = 128

// ErrInvalidName is returned for a room or user name that breaks the naming rules.
var ErrInvalidName = NewError(CodeInvalidName, "invalid name")

// ValidName reports whether s may be used as a room or user name: one topic level of 1–128
// characters, without '/', '+', '#', ':', '{', '}', control characters, or a leading '$'.
func ValidName(s string) bool {
	if s == "" || !utf8.ValidString(s) || s[0] == '$' {
		return false
	}
	if utf8.RuneCountInString(s) > MaxNameLength {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || strings.ContainsRune("/+#:{}", r) {
			return false
		}
	}
	return true
}

// CheckName returns an invalidName error naming what is wrong, or nil.
func CheckName(kind, s string) error {
	if ValidName(s) {
		return nil
	}
	return Errorf(CodeInvalidName, "invalid %s name %q", kind, s)
}
