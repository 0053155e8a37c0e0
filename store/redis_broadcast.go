package store

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// broadcastChannel is the classic (not sharded) pub/sub channel of broadcasts: in a Cluster,
// classic messages reach every node, so every instance gets them whichever node it listens on.
func (r *Redis) broadcastChannel() string { return r.prefix + ":broadcast" }

// Broadcast implements Broadcaster with PUBLISH. In a Cluster every broadcast goes through
// the master of the channel name's slot: go-redis would spread PUBLISH, a keyless command,
// over the nodes, and messages published on different nodes reach a subscriber out of order.
func (r *Redis) Broadcast(ctx context.Context, payload []byte) error {
	var pub redis.Cmdable = r.client
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, r.broadcastChannel())
		if err != nil {
			return redisError("broadcast", err)
		}
		pub = node
	}
	if err := pub.Publish(ctx, r.broadcastChannel(), payload).Err(); err != nil {
		return redisError("broadcast", err)
	}
	return nil
}

// SubscribeBroadcast implements Broadcaster with SUBSCRIBE. go-redis reconnects and subscribes
// again by itself; what is broadcast in between is lost, as Broadcaster allows.
func (r *Redis) SubscribeBroadcast(ctx context.Context, deliver func([]byte)) (func(), error) {
	ps := r.client.Subscribe(ctx, r.broadcastChannel())
	if _, err := ps.Receive(ctx); err != nil { // the subscription confirmation
		_ = ps.Close()
		return nil, redisError("subscribe to broadcasts", err)
	}
	ch := ps.Channel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for msg := range ch { // ends when ps is closed
			deliver([]byte(msg.Payload))
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = ps.Close() // closing ends the subscription whatever the connection's state
			wg.Wait()
		})
	}, nil
}
