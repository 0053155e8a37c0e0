package wire_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/roomq/roomq/wire"
)

var errNoRoomSentinel = wire.NewError(wire.CodeNoRoom, "no such room")

func TestErrorIsMatchesByCode(t *testing.T) {
	wrapped := fmt.Errorf("load room %q: %w", "general", errNoRoomSentinel)
	twice := fmt.Errorf("roomJoin: %w", wrapped)
	otherMessage := wire.Errorf(wire.CodeNoRoom, "room %q was deleted", "x")
	joined := errors.Join(io.EOF, fmt.Errorf("ctx: %w", otherMessage))

	cases := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"same sentinel", errNoRoomSentinel, errNoRoomSentinel, true},
		{"wrapped once", wrapped, errNoRoomSentinel, true},
		{"wrapped twice", twice, errNoRoomSentinel, true},
		{"other message same code", otherMessage, errNoRoomSentinel, true},
		{"sentinel against other message", errNoRoomSentinel, otherMessage, true},
		{"wrapped other message", fmt.Errorf("x: %w", otherMessage), errNoRoomSentinel, true},
		{"errors.Join", joined, errNoRoomSentinel, true},
		{"errors.Join other code", joined, wire.NewError(wire.CodeNotJoined, ""), false},
		{"other code", wire.NewError(wire.CodeNotJoined, "no such room"), errNoRoomSentinel, false},
		{"wrapped other code", fmt.Errorf("x: %w", wire.NewError(wire.CodeRoomExists, "")), errNoRoomSentinel, false},
		{"plain error", errors.New("noRoom: no such room"), errNoRoomSentinel, false},
		{"wrapped with %v loses the code", fmt.Errorf("x: %v", errNoRoomSentinel), errNoRoomSentinel, false},
		{"code error against plain target", errNoRoomSentinel, io.EOF, false},
		{"invalidName", wire.CheckName("room", ""), wire.ErrInvalidName, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := errors.Is(tc.err, tc.target); got != tc.want {
				t.Errorf("errors.Is(%v, %v) = %v, want %v", tc.err, tc.target, got, tc.want)
			}
		})
	}
}

func TestCodeOf(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want wire.Code
	}{
		{"error", wire.NewError(wire.CodeRateLimited, "slow down"), wire.CodeRateLimited},
		{"wrapped", fmt.Errorf("a: %w", fmt.Errorf("b: %w", wire.NewError(wire.CodeTimeout, "late"))), wire.CodeTimeout},
		{"first code in a join wins", errors.Join(io.EOF, wire.NewError(wire.CodeNotAllowed, ""), wire.NewError(wire.CodeNoRoom, "")), wire.CodeNotAllowed},
		{"plain", errors.New("dial tcp: connection refused"), wire.CodeInternalError},
		{"wrapped plain", fmt.Errorf("x: %w", io.EOF), wire.CodeInternalError},
		{"nil", nil, wire.CodeInternalError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := wire.CodeOf(tc.err); got != tc.want {
				t.Errorf("CodeOf(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestAsError(t *testing.T) {
	t.Run("plain errors are hidden", func(t *testing.T) {
		secret := errors.New("redis: AUTH s3cret failed at 10.0.0.7:6379")
		for _, err := range []error{secret, fmt.Errorf("load: %w", secret)} {
			got := wire.AsError(err)
			if got.Code != wire.CodeInternalError {
				t.Errorf("AsError(%v).Code = %q, want %q", err, got.Code, wire.CodeInternalError)
			}
			if got.Message != "internal error" {
				t.Errorf("AsError(%v).Message = %q, want the generic message", err, got.Message)
			}
			if strings.Contains(got.Error(), "s3cret") {
				t.Errorf("AsError leaks the internal error: %q", got.Error())
			}
		}
	})
	t.Run("coded errors are kept", func(t *testing.T) {
		inner := wire.Errorf(wire.CodeNoList, "no list %q", "greylist")
		got := wire.AsError(fmt.Errorf("roomGetAccessList: %w", inner))
		if got != inner {
			t.Fatalf("AsError = %#v, want the wrapped *Error %#v", got, inner)
		}
		if got.Message != `no list "greylist"` {
			t.Errorf("Message = %q", got.Message)
		}
	})
}

func TestErrorFormats(t *testing.T) {
	e := wire.Errorf(wire.CodeNotJoined, "room %q", "general")
	if got, want := e.Error(), `notJoined: room "general"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"code":"notJoined","message":"room \"general\""}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}

func TestCodesAreTheContract(t *testing.T) {
	// The error codes listed in docs/protocol.md, spelled as clients see them.
	want := []string{"badArgument", "badMessage", "invalidName", "noCommand", "noRoom", "roomExists",
		"notJoined", "notAllowed", "noList", "listLimitExceeded", "noUser", "noUserOnline", "rateLimited",
		"timeout", "storeUnavailable", "internalError"}
	got := []wire.Code{wire.CodeBadArgument, wire.CodeBadMessage, wire.CodeInvalidName, wire.CodeNoCommand,
		wire.CodeNoRoom, wire.CodeRoomExists, wire.CodeNotJoined, wire.CodeNotAllowed, wire.CodeNoList,
		wire.CodeListLimitExceeded, wire.CodeNoUser, wire.CodeNoUserOnline, wire.CodeRateLimited,
		wire.CodeTimeout, wire.CodeStoreUnavailable, wire.CodeInternalError}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("code %d = %q, want %q", i, got[i], want[i])
		}
	}
}
