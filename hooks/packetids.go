package hooks

import (
	"reflect"
	"sync/atomic"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// firstServerPacketID is where the packet ids of Mochi's own QoS > 0 packets to a client
// start (the outbox's start at firstPacketID).
const firstServerPacketID = 1 << 14

// moveServerPacketIDs makes Mochi number its own QoS > 0 packets to cl from
// firstServerPacketID instead of 1. Mochi v2.7.9 keeps the ids of the client's packets and of
// its own in one inflight map, against [MQTT-2.2.1]: a client that counts its ids from 1, as
// clients do, meets Mochi's, and then its SUBSCRIBE gets 0x91 (identifier in use) and its QoS 1
// PUBLISH deletes Mochi's unacknowledged packet. The counter is unexported, so it is set
// through reflection; TestServerPacketIDs fails if a Mochi upgrade moves it.
func moveServerPacketIDs(cl *mqtt.Client) bool {
	f := reflect.ValueOf(&cl.State).Elem().FieldByName("packetID")
	if !f.IsValid() || f.Kind() != reflect.Uint32 {
		return false
	}
	atomic.CompareAndSwapUint32((*uint32)(unsafe.Pointer(f.UnsafeAddr())), 0, firstServerPacketID)
	return true
}

// limitServerPacketIDs keeps the packet ids of Mochi's own QoS > 0 packets below
// firstPacketID, where the outbox's start: Mochi counts them up to the server's maximum and
// wraps to 1, and it checks only its own inflight map, which the outbox's QoS 1 packets are
// not in. The limit is an unexported field of Mochi's capabilities, so it is set through
// reflection; TestServerPacketIDs fails if a Mochi upgrade moves it.
func limitServerPacketIDs(srv *mqtt.Server) bool {
	if srv.Options == nil || srv.Options.Capabilities == nil {
		return false
	}
	f := reflect.ValueOf(srv.Options.Capabilities).Elem().FieldByName("maximumPacketID")
	if !f.IsValid() || f.Kind() != reflect.Uint32 {
		return false
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(f.UnsafeAddr())), firstPacketID-1)
	return true
}
