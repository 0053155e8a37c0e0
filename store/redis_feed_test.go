package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/roomq/roomq/internal/redistest"
	"github.com/roomq/roomq/store"
)

// feedWait bounds every wait of these tests.
const feedWait = 30 * time.Second

// feedLog records the deliveries of a feed subscription.
type feedLog struct {
	mu     sync.Mutex
	ids    []uint64
	epochs []string
	notify chan struct{}
}

func newFeedLog() *feedLog { return &feedLog{notify: make(chan struct{}, 1)} }

func (l *feedLog) deliver(m store.Message, epoch string) {
	l.mu.Lock()
	l.ids = append(l.ids, m.ID)
	l.epochs = append(l.epochs, epoch)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

func (l *feedLog) delivered() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]uint64(nil), l.ids...)
}

// waitFor waits until every id of want was delivered, and fails t if one was delivered twice or
// the wait takes longer than feedWait.
func (l *feedLog) waitFor(t *testing.T, want ...uint64) {
	t.Helper()
	deadline := time.NewTimer(feedWait)
	defer deadline.Stop()
	for {
		got := l.delivered()
		seen := make(map[uint64]bool)
		for _, id := range got {
			if seen[id] {
				t.Fatalf("message %d delivered twice: %v", id, got)
			}
			seen[id] = true
		}
		missing := 0
		for _, id := range want {
			if !seen[id] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		select {
		case <-l.notify:
		case <-deadline.C:
			t.Fatalf("waiting %v for messages %v: delivered %v", feedWait, want, got)
		}
	}
}

// checkFor calls check until it returns nil, and fails t with its last error after feedWait.
func checkFor(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(feedWait)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: %v", feedWait, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// feedStore returns a store with the given prefix on client, closed when t ends.
func feedStore(t *testing.T, client redis.UniversalClient, prefix string) *store.Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	s, err := store.NewRedis(ctx, store.RedisOptions{Client: client, Prefix: prefix})
	if err != nil {
		_ = client.Close()
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func feedSubscribe(t *testing.T, s store.Store, room string, l *feedLog) func() {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	stop, err := s.SubscribeRoom(ctx, room, l.deliver)
	if err != nil {
		t.Fatalf("SubscribeRoom(%q): %v", room, err)
	}
	t.Cleanup(stop)
	return stop
}

func feedAppend(t *testing.T, ctx context.Context, s store.Store, room string, n int) []uint64 {
	t.Helper()
	var ids []uint64
	for i := range n {
		m, err := s.Append(ctx, room, store.Message{Author: "a", Timestamp: int64(i), Payload: []byte(`{}`)}, 1000)
		if err != nil {
			t.Fatalf("Append(%q): %v", room, err)
		}
		ids = append(ids, m.ID)
	}
	return ids
}

// TestRedisFeedReconnect kills the subscription's connection on the server and checks that
// the subscription comes back by itself and delivers, from the history, the messages appended
// while it was away.
func TestRedisFeedReconnect(t *testing.T) {
	addr := redistest.Standalone(t)
	for _, protocol := range []int{2, 3} {
		t.Run(fmt.Sprint("RESP", protocol), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), feedWait)
			defer cancel()
			prefix := newPrefix()
			s := feedStore(t, redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol}), prefix)
			admin := redis.NewClient(&redis.Options{Addr: addr})
			defer admin.Close()
			if err := s.CreateRoom(ctx, store.Room{Name: "r", Owner: "o"}); err != nil {
				t.Fatal(err)
			}
			l := newFeedLog()
			feedSubscribe(t, s, "r", l)
			before := feedAppend(t, ctx, s, "r", 2)
			l.waitFor(t, before...)

			for round := range 3 {
				// Other tests' subscriptions share the server: kill only this one's.
				id := subscriberID(t, ctx, admin, "{"+prefix+":room:r}:feed")
				if err := admin.ClientKillByFilter(ctx, "ID", strconv.FormatInt(id, 10)).Err(); err != nil {
					t.Fatal(err)
				}
				away := feedAppend(t, ctx, s, "r", 5)
				l.waitFor(t, append(before, away...)...)
				before = append(before, away...)
				t.Logf("round %d: delivered %d messages", round, len(before))
			}
			if got := l.delivered(); len(got) != len(before) {
				t.Fatalf("delivered %v, want %v once each", got, before)
			}
		})
	}
}

// subscriberID waits until exactly one connection of the server is subscribed to channel, and
// returns its client id.
func subscriberID(t *testing.T, ctx context.Context, c *redis.Client, channel string) int64 {
	t.Helper()
	var id int64
	checkFor(t, "one subscriber of "+channel, func() error {
		n, err := c.PubSubShardNumSub(ctx, channel).Result()
		if err != nil {
			return err
		}
		if n[channel] != 1 {
			return fmt.Errorf("%d subscribers", n[channel])
		}
		list, err := c.ClientList(ctx).Result()
		if err != nil {
			return err
		}
		// CLIENT LIST does not name shard channels: take the connection whose last command
		// was SSUBSCRIBE and that has one shard subscription.
		var ids []int64
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			f := clientFields(line)
			if f["cmd"] == "ssubscribe" && f["ssub"] == "1" {
				n, _ := strconv.ParseInt(f["id"], 10, 64)
				ids = append(ids, n)
			}
		}
		if len(ids) != 1 {
			return fmt.Errorf("connections %v", ids)
		}
		id = ids[0]
		return nil
	})
	return id
}

func clientFields(line string) map[string]string {
	f := make(map[string]string)
	for _, kv := range strings.Fields(line) {
		k, v, _ := strings.Cut(kv, "=")
		f[k] = v
	}
	return f
}

// TestRedisFeedClusterSlotMove moves the slot of a room, with its keys, to another master while
// a subscription listens: the old master ends the subscription, and the subscription must
// follow the slot and deliver what was appended meanwhile.
func TestRedisFeedClusterSlotMove(t *testing.T) {
	addrs := redistest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*feedWait)
	defer cancel()
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	prefix := newPrefix()
	s := feedStore(t, client, prefix)
	if err := s.CreateRoom(ctx, store.Room{Name: "r", Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	l := newFeedLog()
	feedSubscribe(t, s, "r", l)
	want := feedAppend(t, ctx, s, "r", 3)
	l.waitFor(t, want...)

	key := "{" + prefix + ":room:r}:room"
	slot, err := client.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*redis.Client, len(addrs))
	ids := make([]string, len(addrs))
	src := -1
	for i, a := range addrs {
		nodes[i] = redis.NewClient(&redis.Options{Addr: a})
		defer nodes[i].Close()
		if ids[i], err = nodes[i].Do(ctx, "CLUSTER", "MYID").Text(); err != nil {
			t.Fatal(err)
		}
		if n, err := nodes[i].ClusterCountKeysInSlot(ctx, int(slot)).Result(); err != nil {
			t.Fatal(err)
		} else if n > 0 {
			src = i
		}
	}
	if src < 0 {
		t.Fatalf("no node holds slot %d", slot)
	}
	dst := (src + 1) % len(addrs)
	moveSlot(t, ctx, nodes, ids, int(slot), src, dst)

	// Appended at once: these may be published before the subscription follows the slot.
	want = append(want, feedAppend(t, ctx, s, "r", 3)...)
	l.waitFor(t, want...)
	checkFor(t, "the subscription on the new master", func() error {
		n, err := nodes[dst].PubSubShardNumSub(ctx, "{"+prefix+":room:r}:feed").Result()
		if err == nil && n["{"+prefix+":room:r}:feed"] != 1 {
			err = fmt.Errorf("%d subscribers", n["{"+prefix+":room:r}:feed"])
		}
		return err
	})
	want = append(want, feedAppend(t, ctx, s, "r", 3)...)
	l.waitFor(t, want...)
	if got := l.delivered(); len(got) != len(want) {
		t.Fatalf("delivered %v, want %v once each", got, want)
	}
}

// moveSlot moves slot with its keys from nodes[src] to nodes[dst], the way redis-cli
// --cluster reshard does.
func moveSlot(t *testing.T, ctx context.Context, nodes []*redis.Client, ids []string, slot, src, dst int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(nodes[dst].Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src]).Err())
	must(nodes[src].Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst]).Err())
	host, port, _ := net.SplitHostPort(nodes[dst].Options().Addr)
	for {
		keys, err := nodes[src].ClusterGetKeysInSlot(ctx, slot, 100).Result()
		must(err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(nodes[src].Do(ctx, args...).Err())
	}
	must(nodes[dst].Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst]).Err())
	must(nodes[src].Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst]).Err())
	for i := range nodes {
		if i != src && i != dst {
			must(nodes[i].Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst]).Err())
		}
	}
}

// rawFeedRoom starts a Redis server with a store holding room "r", and returns a context for
// the test, the store, a plain client of the server and the store's key prefix.
func rawFeedRoom(t *testing.T) (context.Context, *store.Redis, *redis.Client, string) {
	t.Helper()
	addr := redistest.Standalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	t.Cleanup(cancel)
	prefix := newPrefix()
	s := feedStore(t, redis.NewClient(&redis.Options{Addr: addr}), prefix)
	raw := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = raw.Close() })
	if err := s.CreateRoom(ctx, store.Room{Name: "r", Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	return ctx, s, raw, prefix
}

// TestRedisFeedSkipsBadFrames publishes frames that do not decode on a room's channel and checks
// that the subscription skips them and goes on.
func TestRedisFeedSkipsBadFrames(t *testing.T) {
	ctx, s, raw, prefix := rawFeedRoom(t)
	l := newFeedLog()
	feedSubscribe(t, s, "r", l)
	for _, bad := range []string{"", "x", "1:", "1:2:ab", "0:0:\x01\x00\x00\x00", "1:99:x", "1:0:\x02", "1:-1:\x01\x00\x00\x00"} {
		if err := raw.SPublish(ctx, "{"+prefix+":room:r}:feed", bad).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ids := feedAppend(t, ctx, s, "r", 1)
	l.waitFor(t, ids...)
	if got := l.delivered(); len(got) != 1 {
		t.Fatalf("delivered %v, want %v", got, ids)
	}
}

// TestRedisFeedLargeIDs checks that ids beyond what Lua prints without an exponent reach the
// feed whole.
func TestRedisFeedLargeIDs(t *testing.T) {
	ctx, s, raw, prefix := rawFeedRoom(t)
	const last = 1<<53 - 10 // Lua numbers are doubles: exact up to 2^53
	if err := raw.HSet(ctx, "{"+prefix+":room:r}:room", "last", last).Err(); err != nil {
		t.Fatal(err)
	}
	l := newFeedLog()
	feedSubscribe(t, s, "r", l)
	ids := feedAppend(t, ctx, s, "r", 2)
	if ids[0] != last+1 {
		t.Fatalf("Append gave id %d, want %d", ids[0], uint64(last+1))
	}
	l.waitFor(t, ids...)
}

// TestRedisFeedIdle keeps a subscription idle through two health checks, and checks that it
// keeps its connection (the PINGs are answered) and still delivers.
func TestRedisFeedIdle(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for two health checks")
	}
	for _, protocol := range []int{2, 3} {
		t.Run(fmt.Sprint("RESP", protocol), func(t *testing.T) {
			t.Parallel()
			addr := redistest.Standalone(t) // its own: subscriberID wants one subscriber
			ctx, cancel := context.WithTimeout(context.Background(), 2*feedWait)
			defer cancel()
			prefix := newPrefix()
			channel := "{" + prefix + ":room:r}:feed"
			s := feedStore(t, redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol}), prefix)
			admin := redis.NewClient(&redis.Options{Addr: addr})
			defer admin.Close()
			if err := s.CreateRoom(ctx, store.Room{Name: "r", Owner: "o"}); err != nil {
				t.Fatal(err)
			}
			l := newFeedLog()
			feedSubscribe(t, s, "r", l)
			id := subscriberID(t, ctx, admin, channel)
			// The health check pings after 5 s without traffic, and gives the connection up
			// when a ping goes unanswered for 5 s more: wait until the connection is 11 s old
			// and has pinged.
			checkFor(t, "two health checks on one connection", func() error {
				f, err := clientInfo(ctx, admin, id)
				if err != nil {
					t.Fatalf("the subscription's connection: %v", err)
				}
				if age, _ := strconv.Atoi(f["age"]); age < 11 || f["cmd"] != "ping" {
					return fmt.Errorf("connection age %d s, last command %s", age, f["cmd"])
				}
				return nil
			})
			ids := feedAppend(t, ctx, s, "r", 1)
			l.waitFor(t, ids...)
			if n, err := admin.PubSubShardNumSub(ctx, channel).Result(); err != nil || n[channel] != 1 {
				t.Fatalf("subscribers of %s: %v, %v", channel, n, err)
			}
		})
	}
}

// clientInfo returns the CLIENT LIST fields of connection id.
func clientInfo(ctx context.Context, c *redis.Client, id int64) (map[string]string, error) {
	list, err := c.ClientList(ctx).Result()
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if f := clientFields(line); f["id"] == strconv.FormatInt(id, 10) {
			return f, nil
		}
	}
	return nil, fmt.Errorf("no connection %d", id)
}

// TestRedisFeedClosedStore checks that closing the store ends its subscriptions' connections,
// that cancel still returns, and that SubscribeRoom then fails with ErrUnavailable, as it does
// when Redis cannot be reached.
func TestRedisFeedClosedStore(t *testing.T) {
	addr := redistest.Standalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	prefix := newPrefix()
	s := feedStore(t, redis.NewClient(&redis.Options{Addr: addr}), prefix)
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	l := newFeedLog()
	stop := feedSubscribe(t, s, "r", l)
	channel := "{" + prefix + ":room:r}:feed"
	subscriberID(t, ctx, admin, channel)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, "the subscription to end", func() error {
		n, err := admin.PubSubShardNumSub(ctx, channel).Result()
		if err == nil && n[channel] != 0 {
			err = fmt.Errorf("%d subscribers", n[channel])
		}
		return err
	})
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(feedWait):
		t.Fatal("cancel did not return after Close")
	}
	if _, err := s.SubscribeRoom(ctx, "r", l.deliver); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("SubscribeRoom after Close: %v, want ErrUnavailable", err)
	}

	logging.Disable() // go-redis logs every failed dial
	t.Cleanup(logging.Enable)
	// NewRedis refuses an unreachable Redis: build a store while Redis answers, then stop it.
	addr2 := redistest.Standalone(t)
	s2 := feedStore(t, redis.NewClient(&redis.Options{Addr: addr2, MaxRetries: -1}), newPrefix())
	admin2 := redis.NewClient(&redis.Options{Addr: addr2})
	_ = admin2.ShutdownNoSave(ctx).Err() // the server closes the connection
	_ = admin2.Close()
	checkFor(t, "the server to stop", func() error {
		if s2.Ping(ctx) == nil {
			return errors.New("it still answers")
		}
		return nil
	})
	if _, err := s2.SubscribeRoom(ctx, "r", l.deliver); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("SubscribeRoom with Redis down: %v, want ErrUnavailable", err)
	}
}
