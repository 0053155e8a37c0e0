package hooks

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// The fields moveServerPacketIDs and limitServerPacketIDs set are where Mochi v2.7.9 keeps
// them: the next id Mochi gives follows firstServerPacketID, and its ids stay below
// firstPacketID, wrapping to 1.
func TestServerPacketIDs(t *testing.T) {
	srv := mqtt.New(nil)
	if !limitServerPacketIDs(srv) {
		t.Fatal("mqtt.Capabilities has no uint32 field maximumPacketID any more: see limitServerPacketIDs")
	}
	cl := srv.NewClient(nil, "t", "c", false)
	if !moveServerPacketIDs(cl) {
		t.Fatal("mqtt.ClientState has no uint32 field packetID any more: see moveServerPacketIDs")
	}
	id, err := cl.NextPacketID()
	if err != nil || id != firstServerPacketID+1 {
		t.Fatalf("NextPacketID = %d, %v; want %d", id, err, firstServerPacketID+1)
	}
	for range firstPacketID - firstServerPacketID - 1 {
		if id, err = cl.NextPacketID(); err != nil || id >= firstPacketID {
			t.Fatalf("NextPacketID = %d, %v; want below %d", id, err, firstPacketID)
		}
	}
	if id != 1 {
		t.Fatalf("NextPacketID = %d after %d; want 1 (wrapped)", id, firstPacketID-1)
	}
}
