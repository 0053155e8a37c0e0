package acl

import (
	"context"
	"fmt"
	"net/url"
	"slices"

	"github.com/roomq/roomq/wire"
)

// RoleAdmin is the global role that may do everything.
const RoleAdmin = "admin"

// Identity is an authenticated user.
type Identity struct {
	// User is the user name.
	User string
	// Roles are the user's global roles.
	Roles []string
}

// IsAdmin reports whether the identity has the global admin role.
func (id Identity) IsAdmin() bool { return slices.Contains(id.Roles, RoleAdmin) }

// Credentials are what a client presents when it connects.
type Credentials struct {
	// Username is the CONNECT user name, "" when absent.
	Username string
	// Password is the CONNECT password, nil when absent. It may be a token.
	Password []byte
	// ClientID is the MQTT client identifier.
	ClientID string
	// Remote is the network address of the client (host:port).
	Remote string
	// Cookies are the cookies of a WebSocket client's upgrade request, by name (the first of
	// each name); nil for other clients. Never log them.
	Cookies map[string]string
	// Query holds the query parameters of a WebSocket client's upgrade request URL; nil for
	// other clients. Never log them: they may carry tokens.
	Query url.Values
}

// Authenticator turns credentials into an identity.
type Authenticator interface {
	// Authenticate returns the identity for creds, or an error wrapping ErrBadCredentials
	// when they are missing or wrong, or ErrAuthUnavailable when they could not be checked.
	// Errors never contain passwords, tokens or cookies.
	Authenticate(ctx context.Context, creds Credentials) (Identity, error)
}

// DevAuth is the development authenticator: every valid non-empty username is accepted as that
// user with any password. Without a username, the session id of a WebSocket client
// (Credentials.SessionID: cookie hu60_sid, else query _sid) is the user, as the JSON gateway
// (/v1/ws) and docs/protocol.md have it. Users listed in Admins get the admin role.
type DevAuth struct {
	// Admins are the users given the admin role.
	Admins []string
}

// Authenticate implements Authenticator.
func (a DevAuth) Authenticate(_ context.Context, creds Credentials) (Identity, error) {
	user := creds.Username
	if user == "" {
		user = creds.SessionID()
	}
	if !wire.ValidName(user) {
		return Identity{}, fmt.Errorf("%w: invalid user name", ErrBadCredentials)
	}
	id := Identity{User: user}
	if slices.Contains(a.Admins, user) {
		id.Roles = []string{RoleAdmin}
	}
	return id, nil
}
