package acl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/roomq/roomq/wire"
)

// MaxPasswordLen is the longest password StaticAuth checks, in bytes: bcrypt ignores what
// follows the 72nd byte, so longer passwords are refused rather than silently cut.
const MaxPasswordLen = 72

// StaticUser is one entry of a static users file: a user name, the bcrypt hash of the user's
// password and the user's global roles.
type StaticUser struct {
	Name  string   `yaml:"name"`
	Hash  string   `yaml:"hash"`
	Roles []string `yaml:"roles,omitempty"`
}

// staticFile is the layout of a static users file.
type staticFile struct {
	Users []StaticUser `yaml:"users"`
}

// ParseStaticUsers parses a static users file:
//
//	users:
//	  - name: alice
//	    hash: $2a$10$...   # bcrypt, as `broker passwd` writes it
//	    roles: [admin]
//
// Unknown keys are errors. The entries are not validated; NewStaticAuth does that.
func ParseStaticUsers(data []byte) ([]StaticUser, error) {
	var f staticFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file has no users; io.EOF says so.
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("static users: %w", err)
	}
	return f.Users, nil
}

// MarshalStaticUsers renders users in the layout ParseStaticUsers reads.
func MarshalStaticUsers(users []StaticUser) ([]byte, error) {
	if users == nil {
		users = []StaticUser{}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(staticFile{Users: users}); err != nil {
		return nil, fmt.Errorf("static users: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("static users: %w", err)
	}
	return buf.Bytes(), nil
}

// SetStaticUser returns users with the entry of name set to a bcrypt hash (of the given cost)
// of password: an existing entry is updated in place, a new one is appended. roles, when not
// nil, replace the entry's roles; nil keeps them (none for a new entry). users is not changed.
func SetStaticUser(users []StaticUser, name string, password []byte, roles []string, cost int) ([]StaticUser, error) {
	if !wire.ValidName(name) {
		return nil, fmt.Errorf("static users: %q is not a valid user name (1-128 characters, no / + # : { }, control characters or leading $)", name)
	}
	if len(password) == 0 {
		return nil, errors.New("static users: the password is empty")
	}
	if len(password) > MaxPasswordLen {
		return nil, fmt.Errorf("static users: the password is longer than %d bytes", MaxPasswordLen)
	}
	for _, r := range roles {
		if !wire.ValidName(r) {
			return nil, fmt.Errorf("static users: %q is not a valid role name", r)
		}
	}
	hash, err := bcrypt.GenerateFromPassword(password, cost)
	if err != nil {
		return nil, fmt.Errorf("static users: %w", err)
	}
	out := slices.Clone(users)
	i := slices.IndexFunc(out, func(u StaticUser) bool { return u.Name == name })
	if i < 0 {
		out = append(out, StaticUser{Name: name})
		i = len(out) - 1
	}
	out[i].Hash = string(hash)
	if roles != nil {
		out[i].Roles = slices.Clone(roles)
	}
	return out, nil
}

// StaticAuth authenticates users against a fixed list of bcrypt password hashes. It is safe
// for concurrent use. Build it with NewStaticAuth.
//
// A user name that is not listed costs one bcrypt comparison against a dummy hash, like a
// listed one, so that the time of a refusal does not tell which users exist. For that to hold,
// give every entry the same bcrypt cost (`broker passwd` does).
type StaticAuth struct {
	users map[string]staticEntry
	dummy []byte // a hash of the same cost as the users', of a password nobody knows
}

type staticEntry struct {
	hash  []byte
	roles []string
}

var _ Authenticator = (*StaticAuth)(nil)

// NewStaticAuth validates users (valid and distinct names, bcrypt hashes, valid role names)
// and returns an authenticator that accepts exactly them.
func NewStaticAuth(users []StaticUser) (*StaticAuth, error) {
	a := &StaticAuth{users: make(map[string]staticEntry, len(users))}
	var errs []error
	cost := bcrypt.DefaultCost
	for i, u := range users {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("users[%d]: "+format, append([]any{i}, args...)...))
		}
		if !wire.ValidName(u.Name) {
			bad("%q is not a valid user name (1-128 characters, no / + # : { }, control characters or leading $)", u.Name)
		}
		if _, dup := a.users[u.Name]; dup {
			bad("user %q is listed twice", u.Name)
		}
		c, err := bcrypt.Cost([]byte(u.Hash))
		if err != nil {
			bad("the hash of %q is not a bcrypt hash", u.Name)
		} else if i == 0 || c > cost {
			cost = c
		}
		for _, r := range u.Roles {
			if !wire.ValidName(r) {
				bad("%q is not a valid role name", r)
			}
		}
		a.users[u.Name] = staticEntry{hash: []byte(u.Hash), roles: slices.Clone(u.Roles)}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("static users: %w", err)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("roomq: no such user"), cost)
	if err != nil {
		return nil, fmt.Errorf("static users: %w", err)
	}
	a.dummy = dummy
	return a, nil
}

// Authenticate implements Authenticator: the CONNECT user name must be listed and the
// password must match its hash. The identity has the user's roles.
func (a *StaticAuth) Authenticate(_ context.Context, creds Credentials) (Identity, error) {
	if len(creds.Password) > MaxPasswordLen {
		return Identity{}, fmt.Errorf("%w: password too long", ErrBadCredentials)
	}
	e, ok := a.users[creds.Username]
	hash := e.hash
	if !ok {
		hash = a.dummy
	}
	// Compare even without a password or a known user, so that every refusal costs the same.
	if err := bcrypt.CompareHashAndPassword(hash, creds.Password); err != nil || !ok {
		return Identity{}, ErrBadCredentials
	}
	return Identity{User: creds.Username, Roles: slices.Clone(e.roles)}, nil
}
