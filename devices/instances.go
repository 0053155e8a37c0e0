package devices

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/roomq/roomq/wire"
)

// timing derives the heartbeat schedule from the failure timeout T: a heartbeat every T/5
// that keeps the instance alive for 3T/5, and a look for dead instances every T/5. An instance
// that dies is found dead at most 3T/5 + T/5 after its last heartbeat, which leaves T/5 to
// clean up after it; a live one may miss two heartbeats in a row.
type timing struct {
	interval time.Duration // between heartbeats, and between looks for dead instances
	ttl      time.Duration // how long a heartbeat keeps the instance alive
	lease    time.Duration // how long a claim on a dead instance holds off the others
}

func timingFor(timeout time.Duration) timing {
	return timing{interval: timeout / 5, ttl: timeout * 3 / 5, lease: timeout}
}

// Start cleans up what an earlier run of this instance left in the store, records the first
// heartbeat, and starts heartbeating and looking for dead instances until Close. Call it
// before the instance accepts connections.
func (r *Registry) Start(ctx context.Context) error {
	if err := r.cleanUp(ctx, r.instance); err != nil {
		return fmt.Errorf("clean up the earlier run of instance %q: %w", r.instance, err)
	}
	if _, err := r.store.Heartbeat(ctx, r.instance, r.timing.ttl); err != nil {
		return fmt.Errorf("record the heartbeat of instance %q: %w", r.instance, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.watch()
	}()
	return nil
}

// Deregister removes this instance from the store after a graceful shutdown, so that nobody
// takes it for dead. When the store still holds connections of the instance (their removal
// failed), the instance stays, and the others clean up after it once its heartbeat expires.
func (r *Registry) Deregister(ctx context.Context) error {
	conns, err := r.store.InstanceConnections(ctx, r.instance)
	if err != nil {
		return fmt.Errorf("deregister instance %q: %w", r.instance, err)
	}
	if len(conns) > 0 {
		r.log.Warn("connections of this instance are still recorded: the other instances will clean up after it", "instance", r.instance, "connections", len(conns))
		return nil
	}
	if err := r.store.RemoveInstance(ctx, r.instance); err != nil {
		return fmt.Errorf("deregister instance %q: %w", r.instance, err)
	}
	return nil
}

// watch heartbeats and cleans up after dead instances until Close. It claims dead instances
// only once its own heartbeats have gone through for a ttl: after the store was unreachable,
// the other instances need that long to be heard again, and are not taken for dead meanwhile.
func (r *Registry) watch() {
	t := time.NewTicker(r.timing.interval)
	defer t.Stop()
	healthySince := r.now()
	failing := false
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.timing.interval)
		continued, err := r.store.Heartbeat(ctx, r.instance, r.timing.ttl)
		cancel()
		switch {
		case err != nil:
			if !failing {
				r.log.Warn("heartbeat failed; retrying", "instance", r.instance, "error", err)
			}
			failing = true
			continue
		case failing:
			r.log.Info("heartbeat recovered", "instance", r.instance)
			failing = false
			healthySince = r.now()
		}
		if !continued {
			r.fence()
		}
		if r.now().Sub(healthySince) >= r.timing.ttl {
			r.cleanUpDead()
		}
	}
}

// fence handles the discovery that the others took this instance for dead: they published the
// wills of its connections and removed them from the store, so its connections are ended,
// without their wills.
func (r *Registry) fence() {
	r.log.Error("this instance was taken for dead by the others (the store was unreachable for too long): ending its connections", "instance", r.instance)
	r.mu.Lock()
	for _, s := range r.sessions {
		s.Will = nil
	}
	r.mu.Unlock()
	r.fenced()
}

// cleanUpDead claims the dead instances one by one and cleans up after each.
func (r *Registry) cleanUpDead() {
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.timing.lease)
		dead, err := r.store.ClaimDeadInstance(ctx, r.timing.lease)
		if err != nil || dead == "" {
			cancel()
			if err != nil {
				r.log.Warn("look for dead instances", "error", err)
			}
			return
		}
		r.log.Warn("instance is dead: publishing its wills and presence", "instance", r.instance, "dead", dead)
		if err := r.cleanUp(ctx, dead); err != nil {
			// The claim lapses and the instance is cleaned up again, by this one or another.
			r.log.Error("clean up after dead instance", "dead", dead, "error", err)
			cancel()
			return
		}
		if err := r.store.ReleaseDeadInstance(ctx, dead); err != nil {
			r.log.Warn("release dead instance", "dead", dead, "error", err)
		}
		cancel()
	}
}

// cleanUp ends the connections that the store holds for instance, as if each had been lost:
// it leaves their rooms, publishes their wills, then their users' presence. Each connection is
// ended once, by whoever removes it from the store first.
func (r *Registry) cleanUp(ctx context.Context, instance string) error {
	conns, err := r.store.InstanceConnections(ctx, instance)
	if err != nil {
		return err
	}
	for _, c := range conns {
		removed, left, err := r.store.RemoveConnection(ctx, c.ClientID, c.Session)
		if err != nil {
			return err
		}
		if !removed {
			continue // ended meanwhile, or taken over
		}
		if err := r.rooms.LeaveRooms(ctx, c.User, c.ClientID); err != nil {
			r.log.Error("leave the rooms of a dead connection", "client", c.ClientID, "error", err)
		}
		if len(c.Will) > 0 {
			var w Will
			if err := json.Unmarshal(c.Will, &w); err != nil {
				r.log.Error("decode the will of a dead connection", "client", c.ClientID, "error", err)
			} else {
				r.scheduleWill(w)
			}
		}
		r.publishPresence(ctx, c.User, left)
		r.notify.UserEvent(c.User, wire.NewEvent(wire.EventDisconnectionEcho, map[string]any{
			"clientId": c.ClientID, "connections": left.N,
		}))
	}
	return nil
}
