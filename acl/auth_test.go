package acl_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/roomq/roomq/acl"
)

var _ acl.Authenticator = acl.DevAuth{}

func TestDevAuth(t *testing.T) {
	auth := acl.DevAuth{Admins: []string{"admin", "root"}}
	cases := []struct {
		name     string
		username string
		password []byte
		ok       bool
		admin    bool
	}{
		{"user without password", "alice", nil, true, false},
		{"user with empty password", "alice", []byte{}, true, false},
		{"user with any password", "alice", []byte("wrong"), true, false},
		{"user with binary password", "alice", []byte{0, 0xff}, true, false},
		{"unicode user", "Zoë 世界", []byte("x"), true, false},
		{"user of 128 characters", strings.Repeat("é", 128), nil, true, false},
		{"listed admin", "admin", []byte("x"), true, true},
		{"second listed admin", "root", nil, true, true},
		{"admin match is exact", "Admin", nil, true, false},
		{"admin prefix is not admin", "admin2", nil, true, false},
		{"empty user", "", []byte("x"), false, false},
		{"user of 129 characters", strings.Repeat("é", 129), nil, false, false},
		{"slash", "a/b", nil, false, false},
		{"plus", "a+b", nil, false, false},
		{"hash", "#", nil, false, false},
		{"colon", "a:b", nil, false, false},
		{"braces", "{a}", nil, false, false},
		{"leading dollar", "$SYS", nil, false, false},
		{"NUL", "a\x00", nil, false, false},
		{"newline", "a\nb", nil, false, false},
		{"invalid UTF-8", "a\xff", nil, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := auth.Authenticate(context.Background(), acl.Credentials{
				Username: tc.username, Password: tc.password, ClientID: "c1", Remote: "127.0.0.1:1",
			})
			if !tc.ok {
				if err == nil {
					t.Fatalf("Authenticate(%q) = %+v, want an error", tc.username, id)
				}
				if !errors.Is(err, acl.ErrBadCredentials) {
					t.Errorf("Authenticate(%q) error %v does not wrap ErrBadCredentials", tc.username, err)
				}
				if id.User != "" || id.Roles != nil {
					t.Errorf("Authenticate(%q) returned identity %+v with its error", tc.username, id)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate(%q) = %v", tc.username, err)
			}
			if id.User != tc.username {
				t.Errorf("User = %q, want %q", id.User, tc.username)
			}
			if id.IsAdmin() != tc.admin {
				t.Errorf("IsAdmin() = %v, want %v (roles %q)", id.IsAdmin(), tc.admin, id.Roles)
			}
			if !tc.admin && len(id.Roles) != 0 {
				t.Errorf("Roles = %q, want none", id.Roles)
			}
			if tc.admin && !slices.Equal(id.Roles, []string{acl.RoleAdmin}) {
				t.Errorf("Roles = %q, want [admin]", id.Roles)
			}
		})
	}
}

func TestDevAuthWithoutAdmins(t *testing.T) {
	for _, user := range []string{"admin", "root"} {
		id, err := acl.DevAuth{}.Authenticate(context.Background(), acl.Credentials{Username: user})
		if err != nil {
			t.Fatalf("Authenticate(%q) = %v", user, err)
		}
		if id.IsAdmin() {
			t.Errorf("%q is admin although no admins are listed", user)
		}
	}
}

func TestDevAuthIdentitiesDoNotShareRoles(t *testing.T) {
	auth := acl.DevAuth{Admins: []string{"admin"}}
	a, _ := auth.Authenticate(context.Background(), acl.Credentials{Username: "admin"})
	a.Roles[0] = "changed"
	b, _ := auth.Authenticate(context.Background(), acl.Credentials{Username: "admin"})
	if !b.IsAdmin() {
		t.Errorf("changing one identity's roles changed the next one: %q", b.Roles)
	}
	if auth.Admins[0] != "admin" {
		t.Errorf("changing an identity's roles changed DevAuth.Admins: %q", auth.Admins)
	}
}

func TestErrorsOfACL(t *testing.T) {
	if errors.Is(acl.ErrBadCredentials, acl.ErrNotAllowed) || errors.Is(acl.ErrNotAllowed, acl.ErrNotJoined) {
		t.Error("acl sentinels match each other")
	}
}

// Without a user name, DevAuth takes the session id (cookie hu60_sid, else query _sid) as the
// user, as the JSON gateway needs; a user name wins over it, and a bad sid is refused.
func TestDevAuthSessionID(t *testing.T) {
	auth := acl.DevAuth{Admins: []string{"admin"}}
	cases := []struct {
		name    string
		creds   acl.Credentials
		want    string
		wantErr bool
	}{
		{"cookie", acl.Credentials{Cookies: map[string]string{acl.SessionCookie: "alice"}}, "alice", false},
		{"query", acl.Credentials{Query: url.Values{acl.SessionQueryParam: {"bob"}}}, "bob", false},
		{"cookie before query", acl.Credentials{
			Cookies: map[string]string{acl.SessionCookie: "alice"},
			Query:   url.Values{acl.SessionQueryParam: {"bob"}},
		}, "alice", false},
		{"user name wins", acl.Credentials{Username: "carol", Cookies: map[string]string{acl.SessionCookie: "alice"}}, "carol", false},
		{"admin sid", acl.Credentials{Query: url.Values{acl.SessionQueryParam: {"admin"}}}, "admin", false},
		{"no sid", acl.Credentials{Cookies: map[string]string{"other": "x"}}, "", true},
		{"invalid sid", acl.Credentials{Query: url.Values{acl.SessionQueryParam: {"a/b"}}}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := auth.Authenticate(context.Background(), tc.creds)
			if tc.wantErr {
				if !errors.Is(err, acl.ErrBadCredentials) {
					t.Fatalf("Authenticate = %+v, %v; want ErrBadCredentials", id, err)
				}
				return
			}
			if err != nil || id.User != tc.want {
				t.Fatalf("Authenticate = %+v, %v; want user %q", id, err, tc.want)
			}
			if id.IsAdmin() != (tc.want == "admin") {
				t.Errorf("roles = %q", id.Roles)
			}
		})
	}
}
