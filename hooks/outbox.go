package hooks

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"

	"github.com/roomq/roomq/metrics"
)

// outbox is the ordered queue of the broker's own deliveries to one connection: room messages,
// history replay, events, direct messages and RPC responses. It writes packets in the order
// they were queued, keeps at most limit QoS > 0 packets unacknowledged (the client's Receive
// Maximum), and never drops a packet silently: a client that falls more than maxQueued
// packets behind is disconnected (it can resume by id).
//
// Mochi's own queue is not used because it cannot be reached for one client, parks packets out
// of order when the quota runs out, and drops QoS 1 packets when full (MOCHI-NOTES 6, 14, 15).
type outbox struct {
	cl        *mqtt.Client
	limit     int
	maxQueued int
	spawn     func(func()) bool // starts the drain goroutine under the router's ownership
	overflow  func()            // called once when the queue overflows
	metrics   *metrics.Metrics  // counts written and dropped packets; may be nil
	info      *system.Info      // the server's statistics, counted by writes of shared encodings
	scratch   []byte            // the drain goroutine's buffer for a shared encoding with its packet id
	delay     time.Duration     // how long the drain goroutine waits for more packets after a write

	mu       sync.Mutex
	queue    []outItem // queue[head:] waits; queue[:head] was taken (zeroed)
	head     int
	inflight map[uint16]sentItem
	sent     uint64 // counts the QoS > 0 packets taken from the queue
	retained int    // the retained messages in the queue
	nextID   uint16 // the last packet id used
	running  bool
	closed   bool
	wake     chan struct{}
	hurry    chan struct{} // ends the write delay: a packet that must not wait was queued
	done     chan struct{}
}

func newOutbox(cl *mqtt.Client, limit, maxQueued int, spawn func(func()) bool, overflow func(), m *metrics.Metrics, info *system.Info) *outbox {
	return &outbox{
		cl:        cl,
		limit:     limit,
		maxQueued: maxQueued,
		spawn:     spawn,
		overflow:  overflow,
		metrics:   m,
		info:      info,
		inflight:  make(map[uint16]sentItem),
		wake:      make(chan struct{}, 1),
		hurry:     make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
}

// outItem is a queued packet: pk, or a packet shared with other receivers (a room message),
// made from share.pk with this receiver's QoS and subscription identifier only when it has to
// exist on its own (at QoS 2, kept by Mochi; or when the shared encoding does not fit the
// client). A queue of shared packets holds no copy of them.
//
// When mark is set, it records id once the packet leaves the queue: from then on the packet
// is written or, at QoS > 0, kept for resending, so a resumed session continues after it.
type outItem struct {
	pk    *packets.Packet
	share *encodings
	mark  *atomic.Uint64
	id    uint64
	subID int    // the v5 subscription identifier of a shared packet, 0 for none
	pid   uint16 // the packet id given when the item left the queue, at QoS > 0
	qos   byte
	dup   bool // sent again on a resumed session [MQTT-3.3.1-1]
	// retained is a retained message sent for a SUBSCRIBE: not counted against maxQueued,
	// since a subscription may match many at once.
	retained bool
}

// sentItem is a QoS > 0 packet written and not acknowledged yet, with its place in the order
// of sending.
type sentItem struct {
	it  outItem
	seq uint64
}

// packet returns the item's packet with its packet id.
func (it *outItem) packet() packets.Packet {
	var pk packets.Packet
	if it.pk != nil {
		pk = *it.pk
	} else {
		pk = it.share.pk
		pk.FixedHeader.Qos = it.qos
		if it.subID > 0 {
			pk.Properties.SubscriptionIdentifier = []int{it.subID}
		}
	}
	pk.PacketID = it.pid
	pk.FixedHeader.Dup = it.dup
	return pk
}

// writeQoS returns the QoS the item is written at.
func (it *outItem) writeQoS() byte {
	if it.pk != nil {
		return it.pk.FixedHeader.Qos
	}
	return it.qos
}

// push queues pk, which is not a room message (an event, an RPC answer, a direct message),
// and has it written without a write delay. It never blocks.
func (o *outbox) push(pk packets.Packet) {
	o.pushItem(outItem{pk: &pk})
	o.hurryUp()
}

// pushRetained queues a retained message sent for a SUBSCRIBE, as push does, without
// counting it against maxQueued.
func (o *outbox) pushRetained(pk packets.Packet) {
	o.pushItem(outItem{pk: &pk, retained: true})
	o.hurryUp()
}

// hurryUp ends the write delay.
func (o *outbox) hurryUp() {
	select {
	case o.hurry <- struct{}{}:
	default:
	}
}

// pushItem queues it. It never blocks.
func (o *outbox) pushItem(it outItem) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	if !it.retained && len(o.queue)-o.head-o.retained >= o.maxQueued {
		o.closeLocked()
		o.mu.Unlock()
		o.overflow()
		return
	}
	if it.retained {
		o.retained++
	}
	if o.head > 0 && o.head >= len(o.queue)/2 && len(o.queue) == cap(o.queue) {
		n := copy(o.queue, o.queue[o.head:]) // reuse the taken half rather than grow
		clear(o.queue[n:])
		o.queue, o.head = o.queue[:n], 0
	}
	o.queue = append(o.queue, it)
	if o.running {
		o.mu.Unlock()
		o.signal()
		return
	}
	o.startLocked()
}

// start starts writing what is queued, if anything is and nothing writes it yet.
func (o *outbox) start() {
	o.mu.Lock()
	if o.running || o.closed || o.head == len(o.queue) {
		o.mu.Unlock()
		return
	}
	o.startLocked()
}

// startLocked starts the drain goroutine. Lock o.mu must be held; startLocked unlocks it.
func (o *outbox) startLocked() {
	o.running = true
	o.mu.Unlock()
	if !o.spawn(o.drain) {
		o.mu.Lock()
		o.running = false
		o.mu.Unlock()
	}
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// drop removes the queued packets marked with mark: those of a room subscription that just
// ended, so that nothing more of the room reaches the client.
func (o *outbox) drop(mark *atomic.Uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	kept := o.queue[:0]
	for _, it := range o.queue[o.head:] {
		if it.mark != mark {
			kept = append(kept, it)
		}
	}
	clear(o.queue[len(kept):])
	o.queue, o.head = kept, 0
}

// acked takes the PUBACK of the outbox's QoS 1 packet id: it releases the packet and its
// quota. (Its QoS 1 packets are not in Mochi's inflight map, which would copy every packet
// it keeps, and Mochi ignores a PUBACK it has no packet for.)
func (o *outbox) acked(id uint16) {
	if o.forget(id, 1) {
		o.cl.State.Inflight.IncreaseSendQuota()
		o.countInflight(-1)
		o.signal()
	}
}

// complete releases the quota of a QoS 2 packet whose exchange Mochi completed or gave up.
func (o *outbox) complete(id uint16) {
	if o.forget(id, 2) {
		o.signal()
	}
}

// forget removes packet id from the packets on their way, if it is one of them at qos.
func (o *outbox) forget(id uint16, qos byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s, ok := o.inflight[id]; !ok || s.it.writeQoS() != qos {
		return false
	}
	delete(o.inflight, id)
	return true
}

// release forgets the QoS > 0 packet id that was not written after all.
func (o *outbox) release(it *outItem) {
	o.mu.Lock()
	_, ok := o.inflight[it.pid]
	delete(o.inflight, it.pid)
	o.mu.Unlock()
	if !ok {
		return
	}
	if it.writeQoS() == 2 {
		o.cl.State.Inflight.Delete(it.pid)
	}
	o.cl.State.Inflight.IncreaseSendQuota()
	o.countInflight(-1)
}

// countInflight adds n to the server's count of unacknowledged packets.
func (o *outbox) countInflight(n int64) {
	if o.info != nil {
		atomic.AddInt64(&o.info.Inflight, n)
	}
}

// takeUnacked closes the outbox and returns its QoS 1 packets that were written and not
// acknowledged, in the order they were sent, for the session's next connection to send
// again. (Its QoS 2 packets are in Mochi's inflight map, which Mochi hands over itself.)
func (o *outbox) takeUnacked() []outItem {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closeLocked()
	sent := make([]sentItem, 0, len(o.inflight))
	for _, s := range o.inflight {
		if s.it.writeQoS() == 1 {
			sent = append(sent, s)
		}
	}
	clear(o.inflight)
	o.countInflight(-int64(len(sent)))
	slices.SortFunc(sent, func(a, b sentItem) int { return cmp.Compare(a.seq, b.seq) })
	items := make([]outItem, len(sent))
	for i, s := range sent {
		items[i] = s.it
		items[i].mark = nil // the previous connection's subscription
	}
	return items
}

// resend queues the unacknowledged packets of the session's previous connection, to be
// written again with their packet ids and the DUP flag [MQTT-4.4.0-1] [MQTT-3.3.1-1], ahead
// of what is queued after them. The outbox must not have queued anything yet. It does not
// start writing (it may be called with the router's lock held): start or the next push does.
func (o *outbox) resend(items []outItem) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, it := range items {
		it.dup = true
		o.queue = append(o.queue, it)
	}
}

// close stops the outbox; queued packets are dropped with the connection.
func (o *outbox) close() {
	o.mu.Lock()
	o.closeLocked()
	o.mu.Unlock()
}

// closeLocked marks the outbox closed. Lock o.mu must be held.
func (o *outbox) closeLocked() {
	if !o.closed {
		o.closed = true
		o.queue, o.head, o.retained = nil, 0, 0
		close(o.done)
	}
}

// next takes the next packet that may be written now, waiting for quota when needed (after
// calling beforeWait). It returns false when the queue is empty or the outbox closed; then the
// drain loop ends, unless linger is set: the loop stays the writer of the outbox (a push does
// not start another) and asks again later.
func (o *outbox) next(beforeWait func(), linger bool) (outItem, bool) {
	for {
		o.mu.Lock()
		if o.closed || o.head == len(o.queue) {
			if !linger {
				o.running = false
			}
			o.mu.Unlock()
			return outItem{}, false
		}
		it := o.queue[o.head]
		qos := it.writeQoS()
		if qos > 0 && len(o.inflight) >= o.limit {
			o.mu.Unlock()
			beforeWait()
			select {
			case <-o.wake:
			case <-o.done:
			}
			continue
		}
		o.queue[o.head] = outItem{}
		o.head++
		if it.retained {
			o.retained--
		}
		if o.head == len(o.queue) { // empty: keep a small array for the next packets
			o.head = 0
			if cap(o.queue) > keptQueueCap {
				o.queue = nil
			} else {
				o.queue = o.queue[:0]
			}
		}
		if qos > 0 {
			if it.pid == 0 { // a packet sent again keeps its id
				id, ok := o.packetIDLocked(qos) // [MQTT-2.2.1-4]
				if !ok {
					o.mu.Unlock()
					o.metrics.Dropped(metrics.DropNoPacketID)
					continue // no free packet id: the packet is dropped, as Mochi does
				}
				it.pid = id
			}
			o.sent++
			o.inflight[it.pid] = sentItem{it: it, seq: o.sent} // [MQTT-4.3.2-3] until PUBACK
			if qos == 2 {
				o.cl.State.Inflight.Set(it.packet()) // Mochi runs the exchange [MQTT-4.3.3-3]
			}
			o.cl.State.Inflight.DecreaseSendQuota()
			o.countInflight(1)
		}
		if it.mark != nil {
			it.mark.Store(it.id)
		}
		o.mu.Unlock()
		return it, true
	}
}

// keptQueueCap is the largest queue array an empty outbox keeps for its next packets.
const keptQueueCap = 16

// Packet ids of the outbox come from the upper half of the id space, and Mochi's own from the
// lower half (limitServerPacketIDs). Mochi v2.7.9 keeps the ids of a client's packets and of
// the server's packets in one inflight map, and checks a client's SUBSCRIBE, UNSUBSCRIBE and
// QoS 1 PUBLISH against it: a client id that equals an unacknowledged server QoS 2 id gets 0x91
// (identifier in use) or, worse, deletes the server's entry. Clients count their ids up from
// 1, so ids from 32768 up rarely meet theirs.
const (
	firstPacketID = 1 << 15
	lastPacketID  = 1<<16 - 1
)

// packetIDLocked returns a packet id not in use for the client for a packet at qos. Lock o.mu
// must be held.
func (o *outbox) packetIDLocked(qos byte) (uint16, bool) {
	for range lastPacketID - firstPacketID + 1 {
		if o.nextID < firstPacketID || o.nextID == lastPacketID {
			o.nextID = firstPacketID
		} else {
			o.nextID++
		}
		if _, used := o.inflight[o.nextID]; used {
			continue
		}
		// Mochi's map holds the outbox's QoS 2 packets, those a resumed session inherited
		// among them, and the client's own QoS 2 ids, which a QoS 2 packet's PUBREC and
		// PUBCOMP share it with. It is empty while only QoS 1 packets are on their way.
		if qos == 2 || o.cl.State.Inflight.Len() > 0 {
			if _, used := o.cl.State.Inflight.Get(o.nextID); used {
				continue
			}
		}
		return o.nextID, true
	}
	return 0, false
}

// write writes it: a shared packet's shared encoding when there is one that fits the client,
// else through Mochi's Client.WritePacket.
func (o *outbox) write(it *outItem) error {
	if it.share != nil && (it.subID == 0 || o.cl.Properties.ProtocolVersion < 5) {
		if e := it.share.get(o.cl.Properties.ProtocolVersion, it.qos); e != nil && e.fits(o.cl) {
			return writeEncoded(o.cl, o.info, e, it.pid, it.dup, &o.scratch)
		}
	}
	return o.cl.WritePacket(it.packet())
}

// batchWriter is a connection that gathers the writes between StartBatch and EndBatch into
// fewer system calls (the broker's TCP and TLS connections are).
type batchWriter interface {
	StartBatch()
	EndBatch() error
}

// drain writes queued packets until the queue is empty. On a batchWriter connection the
// packets written in a row go out together; the batch ends when the queue is empty or the
// client's quota is used up, so that nothing waits in it.
func (o *outbox) drain() {
	bw, _ := o.cl.Net.Conn.(batchWriter)
	batching := false
	endBatch := func() error {
		if !batching {
			return nil
		}
		batching = false
		return bw.EndBatch()
	}
	var delay *time.Timer
	lingered := false
	for {
		linger := o.delay > 0 && !lingered
		it, ok := o.next(func() {
			if endBatch() != nil {
				o.close()
			}
		}, linger)
		if !ok {
			if endBatch() != nil {
				o.close()
			}
			if !linger {
				return
			}
			// Wait a moment for more room messages, to write them together; an answer or
			// an event ends the wait.
			lingered = true
			if delay == nil {
				delay = time.NewTimer(o.delay)
			} else {
				delay.Reset(o.delay)
			}
			select {
			case <-delay.C:
			case <-o.hurry:
			case <-o.done:
			}
			continue
		}
		lingered = false
		if bw != nil && !batching {
			bw.StartBatch()
			batching = true
		}
		err := o.write(&it)
		switch {
		case err == nil:
			o.metrics.MessageOut()
		case errors.Is(err, packets.ErrPacketTooLarge):
			// [MQTT-3.1.2-25]: a packet over the client's Maximum Packet Size is discarded.
			o.metrics.Dropped(metrics.DropTooLarge)
			if it.writeQoS() > 0 {
				o.release(&it)
				o.signal()
			}
		default:
			_ = endBatch()
			o.close()
			return
		}
	}
}
