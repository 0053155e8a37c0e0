package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/wire"
)

// Plain MQTT across instances.
//
// What clients publish to plain topics (and to users/{user}/replies/...) is delivered by Mochi
// to the subscribers of this instance, and forwarded to the other instances that have a
// subscriber with a matching filter: each instance records its filters in the store's routes,
// and keeps the routes of the others in a topic index of its own, with instance ids in the
// place of client ids. A forwarded message goes to the instance's mailbox, which delivers the
// messages of one sender in order.
//
// A filter subscribed here is recorded in the store before the SUBACK, and announced to the
// others: to the mailbox of each instance known here (so that it arrives before any message
// this instance forwards there afterwards) and by broadcast (for instances that started since
// the last refresh). Filters without subscribers any more are dropped, and the routes of the
// others read again, every RouteRefresh. Retained messages go to every instance, so that any
// later subscriber finds them.
//
// Delivery across instances is at most once: a message in flight while the store is
// unreachable is lost. Shared subscriptions ($share/group/filter) share among the members on
// one instance: each instance with members of a group delivers to one of them.

// storedRetained is a retained message as the store keeps it.
type storedRetained struct {
	Payload []byte `json:"p"`
	QoS     byte   `json:"q,omitempty"`
	Props   *props `json:"o,omitempty"`
}

// DefaultRouteRefresh is how often an instance drops its unused routes and reads the others'.
const DefaultRouteRefresh = 5 * time.Second

// Control kinds of routing.
const (
	// kindRoute: Instance has subscribers for the filter Topic.
	kindRoute = "route"
	// kindPublish: a client's message (Topic, Payload, QoS, Retain, Props), to deliver here.
	kindPublish = "publish"
)

// routing is the router's state of plain MQTT across instances.
type routing struct {
	// write serializes the changes of this instance's routes in the store; it is held
	// during store calls, mu never is (forward takes mu for every message).
	write sync.Mutex
	mu    sync.Mutex
	// local holds the filters recorded in the store for this instance; pending those added
	// since the last refresh.
	local, pending map[string]struct{}
	// remote indexes the filters of the other instances, by instance id.
	remote *mqtt.TopicsIndex
	// others lists the other instances.
	others []string
	// recent collects, while a refresh reads the store, the routes announced meanwhile, which
	// the refresh's reading may miss.
	recent map[string][]string
}

func newRouting() *routing {
	return &routing{
		local:   make(map[string]struct{}),
		pending: make(map[string]struct{}),
		remote:  mqtt.NewTopicsIndex(),
	}
}

// props is the part of a PUBLISH's properties that crosses instances.
type props struct {
	ResponseTopic   string      `json:"rt,omitempty"`
	CorrelationData []byte      `json:"cd,omitempty"`
	ContentType     string      `json:"ct,omitempty"`
	PayloadFormat   *byte       `json:"pf,omitempty"`
	MessageExpiry   uint32      `json:"me,omitempty"`
	User            [][2]string `json:"up,omitempty"`
}

func propsOf(p packets.Properties) *props {
	out := &props{
		ResponseTopic:   p.ResponseTopic,
		CorrelationData: p.CorrelationData,
		ContentType:     p.ContentType,
		MessageExpiry:   p.MessageExpiryInterval,
	}
	if p.PayloadFormatFlag {
		f := p.PayloadFormat
		out.PayloadFormat = &f
	}
	for _, u := range p.User {
		out.User = append(out.User, [2]string{u.Key, u.Val})
	}
	return out
}

func (p *props) packet() packets.Properties {
	var out packets.Properties
	if p == nil {
		return out
	}
	out.ResponseTopic = p.ResponseTopic
	out.CorrelationData = p.CorrelationData
	out.ContentType = p.ContentType
	out.MessageExpiryInterval = p.MessageExpiry
	if p.PayloadFormat != nil {
		out.PayloadFormat, out.PayloadFormatFlag = *p.PayloadFormat, true
	}
	for _, u := range p.User {
		out.User = append(out.User, packets.UserProperty{Key: u[0], Val: u[1]})
	}
	return out
}

// routeFilter returns the filter to route for a subscription filter: without the $share
// prefix, and "" for those whose messages never cross as plain MQTT (a room, the broker's own
// topics, which it shares itself).
func routeFilter(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			filter = f
		}
	}
	if wire.IsWildcard(filter) {
		return filter
	}
	switch wire.ParseTopic(filter).Kind {
	case wire.TopicRoom, wire.TopicRoomEvents, wire.TopicPresence, wire.TopicUserInbox, wire.TopicUserEvents, wire.TopicRPC:
		return ""
	}
	return filter
}

// addRoutes records the filters of granted subscriptions as routes of this instance, before
// the SUBACK, and announces the new ones.
func (r *Router) addRoutes(pk packets.Packet, reasonCodes []byte) {
	if r.opts.Routes == nil {
		return
	}
	rt := r.routing
	rt.write.Lock()
	defer rt.write.Unlock()
	for i, sub := range pk.Filters {
		if i >= len(reasonCodes) || reasonCodes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		f := routeFilter(sub.Filter)
		if f == "" {
			continue
		}
		rt.mu.Lock()
		rt.pending[f] = struct{}{}
		_, known := rt.local[f]
		rt.mu.Unlock()
		if known {
			continue
		}
		ctx, cancel := r.ctx()
		err := r.opts.Routes.AddRoute(ctx, r.opts.Instance, f)
		cancel()
		if err != nil {
			r.log.Warn("record route", logKeyTopic, f, logKeyError, err)
			continue // the next refresh records it
		}
		rt.mu.Lock()
		rt.local[f] = struct{}{}
		others := slices.Clone(rt.others)
		rt.mu.Unlock()
		for _, inst := range others {
			r.broadcast(envelope{Kind: kindRoute, Topic: f, to: inst})
		}
		r.broadcast(envelope{Kind: kindRoute, Topic: f})
	}
}

// storeRetained records a retained message published here in the store and returns its
// version. When a newer retained message of the topic came from another instance meanwhile,
// it clears pk's retain flag, so that Mochi delivers it without retaining it: every instance
// keeps the newest.
func (r *Router) storeRetained(pk *packets.Packet) (uint64, error) {
	if r.opts.Retained == nil || !pk.FixedHeader.Retain {
		return 0, nil
	}
	var message []byte
	if len(pk.Payload) > 0 { // an empty one removes the retained message [MQTT-3.3.1-10]
		message, _ = json.Marshal(storedRetained{Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Props: propsOf(pk.Properties)})
	}
	ctx, cancel := r.ctx()
	defer cancel()
	version, err := r.opts.Retained.SetRetained(ctx, pk.TopicName, message)
	if err != nil {
		return 0, err
	}
	if !r.newerRetained(*pk, version) {
		pk.FixedHeader.Retain = false
	}
	return version, nil
}

// newerRetained records pk, of the given version, as the retained message of its topic here,
// and reports whether it is newer than the one retained here.
func (r *Router) newerRetained(pk packets.Packet, version uint64) bool {
	r.retainedMu.Lock()
	defer r.retainedMu.Unlock()
	if cur, ok := r.retained[pk.TopicName]; ok && cur.version >= version {
		return false
	}
	r.retained[pk.TopicName] = retainedVersion{version: version, pk: pk}
	return true
}

// OnRetainMessage keeps the newest retained message of a topic when Mochi retains an older
// one. Mochi retains a client's retained publish after OnPublish returns, and a newer one
// from another instance may have been retained in between (deliverForwarded): without this,
// the older one would stay here while the other instances keep the newer.
func (r *Router) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, _ int64) {
	r.retainedMu.Lock()
	defer r.retainedMu.Unlock()
	cur, ok := r.retained[pk.TopicName]
	if !ok || (bytes.Equal(cur.pk.Payload, pk.Payload) && cur.pk.FixedHeader.Qos == pk.FixedHeader.Qos) {
		return // not shared with the other instances, or the newest (or the same again)
	}
	newest := cur.pk.Copy(false)
	newest.FixedHeader.Retain = true
	r.retain(newest)
}

// retainedVersion is the newest retained message of a topic here, and its version in the
// store.
type retainedVersion struct {
	version uint64
	pk      packets.Packet
}

// LoadRetained retains here the retained messages that the store keeps, for an instance that
// starts. Newer ones that arrived meanwhile stay.
func (r *Router) LoadRetained(ctx context.Context) error {
	if r.opts.Retained == nil {
		return nil
	}
	all, err := r.opts.Retained.RetainedMessages(ctx)
	if err != nil {
		return fmt.Errorf("read retained messages: %w", err)
	}
	for _, rm := range all {
		var m storedRetained
		if json.Unmarshal(rm.Message, &m) != nil {
			continue
		}
		pk := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: true},
			TopicName:   rm.Topic,
			Payload:     m.Payload,
			Properties:  m.Props.packet(),
			Origin:      brokerInlineClientID,
			Created:     time.Now().Unix(),
		}
		if !r.newerRetained(pk, rm.Version) {
			continue
		}
		r.retain(pk)
	}
	return nil
}

// forward sends a message published here to the other instances with a matching route;
// a retained one (version from storeRetained) goes to every instance.
func (r *Router) forward(pk packets.Packet, version uint64) {
	if r.opts.Routes == nil {
		return
	}
	e := envelope{Kind: kindPublish, Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Props: propsOf(pk.Properties)}
	if version > 0 {
		e.Retain, e.Version = true, version
		r.broadcast(e)
		return
	}
	rt := r.routing
	rt.mu.Lock()
	if len(rt.others) == 0 {
		rt.mu.Unlock()
		return // a single instance
	}
	subs := rt.remote.Subscribers(pk.TopicName)
	rt.mu.Unlock()
	for inst := range subs.Subscriptions {
		e.to = inst
		r.broadcast(e)
	}
}

// deliverForwarded delivers a message forwarded by another instance to the subscribers here,
// and retains it unless a newer retained message of its topic is here.
func (r *Router) deliverForwarded(e envelope) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: e.QoS, Retain: e.Retain},
		TopicName:   e.Topic,
		Payload:     e.Payload,
		Properties:  e.Props.packet(),
		PacketID:    uint16(e.QoS), // non-zero for QoS > 0 (MOCHI-NOTES 8)
	}
	pk.FixedHeader.Retain = e.Retain && r.newerRetained(pk, e.Version)
	if err := r.srv.InjectPacket(r.remote, pk); err != nil {
		r.log.Error("deliver a message of another instance", logKeyTopic, e.Topic, logKeyError, err)
	}
}

// remoteRoute records a route of another instance.
func (r *Router) remoteRoute(instance, filter string) {
	rt := r.routing
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.remote.Subscribe(instance, packets.Subscription{Filter: filter})
	if !slices.Contains(rt.others, instance) {
		rt.others = append(rt.others, instance)
	}
	if rt.recent != nil {
		rt.recent[instance] = append(rt.recent[instance], filter)
	}
}

// refreshRoutes drops the routes of this instance that no subscription needs any more and
// reads the routes of the others again.
func (r *Router) refreshRoutes(ctx context.Context) {
	want := make(map[string]struct{})
	for _, cl := range r.srv.Clients.GetAll() {
		if cl.Net.Inline {
			continue
		}
		for filter := range cl.State.Subscriptions.GetAll() {
			if f := routeFilter(filter); f != "" {
				want[f] = struct{}{}
			}
		}
	}
	rt := r.routing
	rt.write.Lock()
	rt.mu.Lock()
	maps.Copy(want, rt.pending) // subscribed since: maybe not in the sessions yet
	clear(rt.pending)
	rt.recent = make(map[string][]string)
	changed := !maps.Equal(want, rt.local)
	rt.mu.Unlock()
	if changed {
		filters := slices.Sorted(maps.Keys(want))
		if err := r.opts.Routes.SetRoutes(ctx, r.opts.Instance, filters); err != nil {
			r.log.Warn("record routes", logKeyError, err)
		} else {
			rt.mu.Lock()
			rt.local = want
			rt.mu.Unlock()
		}
	}
	rt.write.Unlock()

	all, err := r.opts.Routes.Routes(ctx)
	if err != nil {
		r.log.Warn("read the routes of the other instances", logKeyError, err)
		rt.mu.Lock()
		rt.recent = nil
		rt.mu.Unlock()
		return
	}
	remote := mqtt.NewTopicsIndex()
	others := make([]string, 0, len(all))
	for inst, filters := range all {
		if inst == r.opts.Instance {
			continue
		}
		others = append(others, inst)
		for _, f := range filters {
			remote.Subscribe(inst, packets.Subscription{Filter: f})
		}
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for inst, filters := range rt.recent {
		for _, f := range filters {
			remote.Subscribe(inst, packets.Subscription{Filter: f})
		}
		if !slices.Contains(others, inst) {
			others = append(others, inst)
		}
	}
	rt.remote, rt.others, rt.recent = remote, others, nil
}

// keepRoutes refreshes the routes every RouteRefresh until stop is closed.
func (r *Router) keepRoutes(stop <-chan struct{}) {
	t := time.NewTicker(r.opts.RouteRefresh)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := r.ctx()
		r.refreshRoutes(ctx)
		cancel()
	}
}
