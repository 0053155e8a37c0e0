// Package hooks translates MQTT into calls on the broker's packages. It provides the Mochi
// hooks of the broker:
//
//   - Auth, the one authority for CONNECT and ACL decisions (package acl decides, Auth answers
//     Mochi and chooses the reason codes);
//   - Router, which maps PUBLISH, SUBSCRIBE and UNSUBSCRIBE onto rooms, direct messages and RPC
//     (packages rooms and commands), reports connections to package devices, publishes wills,
//     and delivers the broker's own messages through per-connection outboxes that keep order
//     and respect each client's Receive Maximum. A connection's room posts are pipelined
//     (postPipe): several are on their way at once, stored and acknowledged in the order they
//     arrived.
//
// It owns no domain state of its own beyond the per-connection delivery state.
package hooks
