package acl_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/roomq/roomq/acl"
)

var _ acl.Authenticator = (*acl.StaticAuth)(nil)

// conformance checks what every Authenticator promises: good credentials give want, and
// twice the same answer without shared roles; bad credentials give an error wrapping
// ErrBadCredentials, no identity, and an error text without the secret they carried.
func conformance(t *testing.T, a acl.Authenticator, good acl.Credentials, want acl.Identity, bad acl.Credentials, secret string) {
	t.Helper()
	ctx := context.Background()
	id, err := a.Authenticate(ctx, good)
	if err != nil {
		t.Fatalf("good credentials: %v", err)
	}
	if !reflect.DeepEqual(id, want) {
		t.Fatalf("identity = %+v, want %+v", id, want)
	}
	if len(id.Roles) > 0 {
		id.Roles[0] = "changed"
		again, err := a.Authenticate(ctx, good)
		if err != nil || !reflect.DeepEqual(again, want) {
			t.Errorf("after changing a returned identity's roles: %+v, %v; want %+v", again, err, want)
		}
	}
	id, err = a.Authenticate(ctx, bad)
	if !errors.Is(err, acl.ErrBadCredentials) {
		t.Fatalf("bad credentials: err = %v, want ErrBadCredentials", err)
	}
	if errors.Is(err, acl.ErrAuthUnavailable) {
		t.Errorf("bad credentials: err %v also wraps ErrAuthUnavailable", err)
	}
	if !reflect.DeepEqual(id, acl.Identity{}) {
		t.Errorf("bad credentials: identity %+v returned with the error", id)
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		t.Errorf("error %q contains the secret", err)
	}
}

// staticUsers returns alice (password "alice-pw", role admin) and bob ("bob-pw", no role)
// hashed at the given cost.
func staticUsers(t *testing.T, cost int) []acl.StaticUser {
	t.Helper()
	users, err := acl.SetStaticUser(nil, "alice", []byte("alice-pw"), []string{acl.RoleAdmin}, cost)
	if err != nil {
		t.Fatal(err)
	}
	users, err = acl.SetStaticUser(users, "bob", []byte("bob-pw"), nil, cost)
	if err != nil {
		t.Fatal(err)
	}
	return users
}

func newStatic(t *testing.T, users []acl.StaticUser) *acl.StaticAuth {
	t.Helper()
	a, err := acl.NewStaticAuth(users)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestStaticAuthConformance(t *testing.T) {
	a := newStatic(t, staticUsers(t, bcrypt.MinCost))
	conformance(t, a,
		acl.Credentials{Username: "alice", Password: []byte("alice-pw")},
		acl.Identity{User: "alice", Roles: []string{acl.RoleAdmin}},
		acl.Credentials{Username: "alice", Password: []byte("bob-pw")}, "bob-pw")
}

func TestStaticAuth(t *testing.T) {
	a := newStatic(t, staticUsers(t, bcrypt.MinCost))
	long := strings.Repeat("x", acl.MaxPasswordLen)
	withLong, err := acl.SetStaticUser(staticUsers(t, bcrypt.MinCost), "carol", []byte(long), []string{"moderator", "admin"}, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	b := newStatic(t, withLong)
	cases := []struct {
		name     string
		a        *acl.StaticAuth
		user, pw string
		want     *acl.Identity
	}{
		{"good password with role", a, "alice", "alice-pw", &acl.Identity{User: "alice", Roles: []string{"admin"}}},
		{"good password without role", a, "bob", "bob-pw", &acl.Identity{User: "bob"}},
		{"wrong password", a, "alice", "alice-pw2", nil},
		{"other user's password", a, "bob", "alice-pw", nil},
		{"empty password", a, "alice", "", nil},
		{"unknown user", a, "mallory", "alice-pw", nil},
		{"empty user", a, "", "alice-pw", nil},
		{"user name case matters", a, "Alice", "alice-pw", nil},
		{"password of 72 bytes", b, "carol", long, &acl.Identity{User: "carol", Roles: []string{"moderator", "admin"}}},
		{"bcrypt would ignore the 73rd byte", b, "carol", long + "y", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.a.Authenticate(context.Background(), acl.Credentials{Username: tc.user, Password: []byte(tc.pw)})
			if tc.want == nil {
				if !errors.Is(err, acl.ErrBadCredentials) {
					t.Fatalf("Authenticate = %+v, %v; want ErrBadCredentials", id, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if !reflect.DeepEqual(id, *tc.want) {
				t.Errorf("identity = %+v, want %+v", id, *tc.want)
			}
		})
	}
}

// An unknown user costs a bcrypt comparison like a known one, so the time of a refusal does
// not tell which users exist. Skipping the comparison would be over 1,000 times faster than a
// cost-6 comparison, so half of the known user's time is a safe bound.
func TestStaticAuthUnknownUserCostsAComparison(t *testing.T) {
	a := newStatic(t, staticUsers(t, 6))
	fastest := func(user string) time.Duration {
		best := time.Hour
		for range 3 {
			start := time.Now()
			if _, err := a.Authenticate(context.Background(), acl.Credentials{Username: user, Password: []byte("guess")}); err == nil {
				t.Fatalf("%s accepted with a wrong password", user)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	known, unknown := fastest("alice"), fastest("nobody")
	if unknown < known/2 {
		t.Errorf("refusing an unknown user took %v, a known one %v: the timing tells users apart", unknown, known)
	}
}

func TestNewStaticAuthValidates(t *testing.T) {
	good := staticUsers(t, bcrypt.MinCost)
	cases := []struct {
		name  string
		users []acl.StaticUser
		want  string
	}{
		{"invalid name", []acl.StaticUser{{Name: "a/b", Hash: good[0].Hash}}, `users[0]: "a/b" is not a valid user name`},
		{"empty name", []acl.StaticUser{{Hash: good[0].Hash}}, "users[0]"},
		{"twice", []acl.StaticUser{good[0], good[1], good[0]}, `users[2]: user "alice" is listed twice`},
		{"not bcrypt", []acl.StaticUser{{Name: "x", Hash: "plain"}}, `users[0]: the hash of "x" is not a bcrypt hash`},
		{"bad role", []acl.StaticUser{{Name: "x", Hash: good[0].Hash, Roles: []string{"#"}}}, `users[0]: "#" is not a valid role name`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := acl.NewStaticAuth(tc.users)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := acl.NewStaticAuth(nil); err != nil {
		t.Errorf("no users: %v", err)
	}
}

func TestStaticUsersFile(t *testing.T) {
	users := staticUsers(t, bcrypt.MinCost)
	data, err := acl.MarshalStaticUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "users:\n  - name: alice\n    hash: $2a$04$") {
		t.Errorf("file starts\n%s", data)
	}
	back, err := acl.ParseStaticUsers(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, users) {
		t.Errorf("round trip = %+v, want %+v", back, users)
	}

	for _, empty := range []string{"", "# nothing\n", "users: []\n"} {
		if got, err := acl.ParseStaticUsers([]byte(empty)); err != nil || len(got) != 0 {
			t.Errorf("ParseStaticUsers(%q) = %v, %v; want no users", empty, got, err)
		}
	}
	for _, bad := range []string{"users: [{name: a, hash: x, role: admin}]\n", "user: []\n", "users: {a: b}\n", "users: [\n"} {
		if _, err := acl.ParseStaticUsers([]byte(bad)); err == nil {
			t.Errorf("ParseStaticUsers(%q) succeeded", bad)
		}
	}
}

func TestSetStaticUser(t *testing.T) {
	users := staticUsers(t, bcrypt.MinCost)
	// A new password keeps the roles unless new ones are given.
	updated, err := acl.SetStaticUser(users, "alice", []byte("new-pw"), nil, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if len(updated) != 2 || updated[0].Name != "alice" || !reflect.DeepEqual(updated[0].Roles, []string{acl.RoleAdmin}) {
		t.Fatalf("updated = %+v", updated)
	}
	if users[0].Hash == updated[0].Hash {
		t.Error("SetStaticUser changed its argument or kept the old hash")
	}
	a := newStatic(t, updated)
	if _, err := a.Authenticate(context.Background(), acl.Credentials{Username: "alice", Password: []byte("new-pw")}); err != nil {
		t.Errorf("new password: %v", err)
	}
	if _, err := a.Authenticate(context.Background(), acl.Credentials{Username: "alice", Password: []byte("alice-pw")}); err == nil {
		t.Error("old password still accepted")
	}
	updated, err = acl.SetStaticUser(updated, "alice", []byte("new-pw"), []string{}, bcrypt.MinCost)
	if err != nil || len(updated[0].Roles) != 0 {
		t.Errorf("roles not cleared: %+v, %v", updated, err)
	}

	for _, tc := range []struct {
		name, user, pw string
		roles          []string
	}{
		{"bad user", "a+b", "pw", nil},
		{"empty password", "x", "", nil},
		{"long password", "x", strings.Repeat("p", acl.MaxPasswordLen+1), nil},
		{"bad role", "x", "pw", []string{"ok", ""}},
	} {
		if _, err := acl.SetStaticUser(users, tc.user, []byte(tc.pw), tc.roles, bcrypt.MinCost); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
