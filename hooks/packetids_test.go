package hooks

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// The counter moveServerPacketIDs sets is where Mochi v2.7.9 keeps it: the next id Mochi gives
// follows firstServerPacketID.
func TestServerPacketIDs(t *testing.T) {
	srv := mqtt.New(nil)
	cl := srv.NewClient(nil, "t", "c", false)
	if !moveServerPacketIDs(cl) {
		t.Fatal("mqtt.ClientState has no uint32 field packetID any more: see moveServerPacketIDs")
	}
	id, err := cl.NextPacketID()
	if err != nil || id != firstServerPacketID+1 {
		t.Fatalf("NextPacketID = %d, %v; want %d", id, err, firstServerPacketID+1)
	}
}
