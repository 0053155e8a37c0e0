package store

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// broadcastChannel is the classic (not sharded) pub/sub channel of broadcasts: in a Cluster,
// classic messages reach every node, so every instance gets them whichever node it listens on.
func (r *Redis) broadcastChannel() string { return r.prefix + ":broadcast" }

// mailboxChannel is the classic pub/sub channel of an instance's mailbox.
func (r *Redis) mailboxChannel(instance string) string { return r.prefix + ":mailbox:" + instance }

// Broadcast implements Broadcaster with PUBLISH.
func (r *Redis) Broadcast(ctx context.Context, payload []byte) error {
	return r.publishInOrder(ctx, "broadcast", r.broadcastChannel(), payload)
}

// SubscribeBroadcast implements Broadcaster with SUBSCRIBE.
func (r *Redis) SubscribeBroadcast(ctx context.Context, deliver func([]byte)) (func(), error) {
	return r.subscribeChannel(ctx, "subscribe to broadcasts", r.broadcastChannel(), deliver)
}

// SendTo implements Routes with PUBLISH on the instance's channel.
func (r *Redis) SendTo(ctx context.Context, instance string, payload []byte) error {
	return r.publishInOrder(ctx, "send to instance", r.mailboxChannel(instance), payload)
}

// SubscribeMailbox implements Routes with SUBSCRIBE to the instance's channel.
func (r *Redis) SubscribeMailbox(ctx context.Context, instance string, deliver func([]byte)) (func(), error) {
	return r.subscribeChannel(ctx, "subscribe to mailbox", r.mailboxChannel(instance), deliver)
}

// publishInOrder publishes payload on a classic channel. In a Cluster every message of a
// channel goes through the master of the channel name's slot: go-redis would spread PUBLISH, a
// keyless command, over the nodes, and messages published on different nodes reach a
// subscriber out of order.
func (r *Redis) publishInOrder(ctx context.Context, op, channel string, payload []byte) error {
	var pub redis.Cmdable = r.client
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, channel)
		if err != nil {
			return redisError(op, err)
		}
		pub = node
	}
	if err := pub.Publish(ctx, channel, payload).Err(); err != nil {
		return redisError(op, err)
	}
	return nil
}

// subscribeChannel calls deliver with the messages of a classic channel until the returned
// cancel. go-redis reconnects and subscribes again by itself; what is published in between
// is lost, as Broadcaster and Routes allow.
func (r *Redis) subscribeChannel(ctx context.Context, op, channel string, deliver func([]byte)) (func(), error) {
	ps := r.client.Subscribe(ctx, channel)
	if _, err := ps.Receive(ctx); err != nil { // the subscription confirmation
		_ = ps.Close()
		return nil, redisError(op, err)
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
