// Package acl owns authentication and permissions: who a connecting client is (Authenticator),
// and what an identity may do with rooms and topics (Policy).
//
// It decides; it does not enforce. Package hooks asks it at every door (CONNECT, SUBSCRIBE,
// PUBLISH, RPC) and turns its answers into reason codes.
package acl
