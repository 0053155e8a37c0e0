// Package acl owns authentication and permissions.
//
// Authentication: an Authenticator turns the credentials of a connecting client (user name,
// password, and for WebSocket clients the cookies and query of the upgrade request) into an
// Identity with roles. DevAuth is the development mode; the static (bcrypt users file), JWT
// (HS256/RS256/ES256) and HTTP callback plugins are for production.
//
// Permissions: Policy decides who may join, post to, read and manage a room (owner, room
// admins, blacklist, whitelist and whitelist-only mode; access.go), who may send a direct
// message to whom, which SUBSCRIBE filters and PUBLISH topics the reserved namespaces allow,
// and, through Rules, which plain topics a user or client may use.
//
// It decides; it does not enforce. Package hooks asks it at every door (CONNECT, SUBSCRIBE,
// PUBLISH, RPC) and turns its answers into reason codes; package commands asks it for every
// command.
package acl
