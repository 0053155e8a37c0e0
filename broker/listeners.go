package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// safeClose wraps a listener so that, when Mochi closes it, its clients are disconnected by
// disconnectListener instead of Mochi's closeListenerClients. Mochi v2.7.9 finds them with
// Clients.GetByListener, which takes the clients' read lock twice (through Len): a client
// disconnecting at that moment waits for the write lock between the two, and Shutdown
// deadlocks.
type safeClose struct {
	listeners.Listener
	srv *mqtt.Server
}

// Close implements listeners.Listener.
func (l safeClose) Close(listeners.CloseFn) {
	l.Listener.Close(func(id string) { disconnectListener(l.srv, id) })
}

// disconnectListener disconnects the clients of listener id, v5 clients with DISCONNECT 0x8B,
// as Mochi's closeListenerClients does.
func disconnectListener(srv *mqtt.Server, id string) {
	for _, cl := range srv.Clients.GetAll() { // one read lock, a copy
		if cl.Net.Listener == id && !cl.Closed() {
			_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}
