// Package rooms owns rooms and their messages: message checkers, enrichment with id, author and
// timestamp, the per-room history with gap-free ids, resume, and ordered delivery to the
// subscribers connected to this instance.
//
// It knows nothing of MQTT packets or permissions: callers decide who may do what (package
// acl) and translate subscribers and notifications to the wire (package hooks). State that is
// shared between instances lives in a store.Store.
package rooms
