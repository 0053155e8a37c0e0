package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/roomq/roomq/internal/redistest"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/store/storetest"
)

// prefixes numbers the key prefixes of the stores of one test binary, so that stores on a
// shared server do not see each other's keys.
var prefixes atomic.Int64

func newPrefix() string { return fmt.Sprintf("t%d", prefixes.Add(1)) }

// newRedisStore returns a store with a new key prefix on the Redis of urls.
func newRedisStore(t testing.TB, urls ...string) *store.Redis {
	t.Helper()
	client, err := store.NewRedisClient(urls)
	if err != nil {
		t.Fatalf("NewRedisClient: %v", err)
	}
	return newRedisStoreWith(t, client)
}

func newRedisStoreWith(t testing.TB, client redis.UniversalClient) *store.Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.NewRedis(ctx, store.RedisOptions{Client: client, Prefix: newPrefix()})
	if err != nil {
		_ = client.Close()
		t.Fatalf("NewRedis: %v", err)
	}
	return s
}

func urls(addrs ...string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = "redis://" + a
	}
	return out
}

func TestRedisStandalone(t *testing.T) {
	u := urls(redistest.Standalone(t))
	storetest.Run(t, func(t *testing.T) store.Store { return newRedisStore(t, u...) })
}

// TestRedisStandaloneRESP2 runs the suite over RESP2, which turns some script replies into
// other types than RESP3 (go-redis's default) does.
func TestRedisStandaloneRESP2(t *testing.T) {
	u := []string{"redis://" + redistest.Standalone(t) + "?protocol=2"}
	storetest.Run(t, func(t *testing.T) store.Store { return newRedisStore(t, u...) })
}

func TestRedisCluster(t *testing.T) {
	u := urls(redistest.Cluster(t)...)
	storetest.Run(t, func(t *testing.T) store.Store { return newRedisStore(t, u...) })
}

// TestRedisUnavailable stops the server under a store and checks that every method then fails
// with ErrUnavailable, with context.
func TestRedisUnavailable(t *testing.T) {
	addr := redistest.Standalone(t)
	logging.Disable() // go-redis logs every failed dial
	t.Cleanup(logging.Enable)
	// No retries, so that each call fails at once.
	s := newRedisStoreWith(t, redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1}))
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CreateRoom(ctx, store.Room{Name: "r", Owner: "o"}); err != nil {
		t.Fatal(err)
	}

	// A context that has ended gives ErrUnavailable and the context's error.
	ended, cancelEnded := context.WithCancel(ctx)
	cancelEnded()
	_, err := s.Room(ended, "r")
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Room with a canceled context: %v, want ErrUnavailable and context.Canceled", err)
	}

	admin := redis.NewClient(&redis.Options{Addr: addr})
	_ = admin.ShutdownNoSave(ctx).Err() // the server closes the connection
	_ = admin.Close()
	for s.Ping(ctx) == nil {
		select {
		case <-ctx.Done():
			t.Fatal("the server still answers after SHUTDOWN")
		case <-time.After(10 * time.Millisecond):
		}
	}

	room, direct := store.RoomScope("r"), store.DirectScope("u")
	calls := map[string]func() error{
		"Ping":            func() error { return s.Ping(ctx) },
		"CreateRoom":      func() error { return s.CreateRoom(ctx, store.Room{Name: "x"}) },
		"Room":            func() error { _, err := s.Room(ctx, "r"); return err },
		"DeleteRoom":      func() error { return s.DeleteRoom(ctx, "r") },
		"RoomNames":       func() error { _, err := s.RoomNames(ctx); return err },
		"CountOwnedRooms": func() error { _, err := s.CountOwnedRooms(ctx, "o"); return err },
		"Append":          func() error { _, err := s.Append(ctx, "r", store.Message{}, 10); return err },
		"Range":           func() error { _, err := s.Range(ctx, "r", 0, 10); return err },
		"Recent":          func() error { _, err := s.Recent(ctx, "r", 10); return err },
		"HistoryInfo":     func() error { _, err := s.HistoryInfo(ctx, "r"); return err },
		"AddConnection": func() error {
			_, err := s.AddConnection(ctx, store.Connection{ClientID: "c", Session: "s", User: "u"})
			return err
		},
		"RemoveConnection": func() error { _, _, err := s.RemoveConnection(ctx, "c", "s"); return err },
		"UserConnections":  func() error { _, err := s.UserConnections(ctx, "u"); return err },
		"Join":             func() error { _, _, err := s.Join(ctx, "r", "u", "c", 1); return err },
		"Leave":            func() error { _, _, err := s.Leave(ctx, "r", "u", "c", 1); return err },
		"RoomUsers":        func() error { _, err := s.RoomUsers(ctx, "r"); return err },
		"ClientRooms":      func() error { _, err := s.ClientRooms(ctx, "c"); return err },
		"UserSeen":         func() error { _, _, err := s.UserSeen(ctx, "r", "u"); return err },
		"ListAdd": func() error {
			_, err := s.ListAdd(ctx, room, store.ListBlacklist, []string{"a"}, 0)
			return err
		},
		"ListRemove": func() error {
			_, err := s.ListRemove(ctx, direct, store.ListBlacklist, []string{"a"})
			return err
		},
		"ListUsers":        func() error { _, err := s.ListUsers(ctx, room, store.ListWhitelist); return err },
		"SetWhitelistOnly": func() error { _, err := s.SetWhitelistOnly(ctx, direct, true); return err },
		"Access":           func() error { _, _, _, err := s.Access(ctx, room, "a"); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the server stopped: %v, want ErrUnavailable", name, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "store: redis: ") || err.Error() == store.ErrUnavailable.Error() {
			t.Errorf("%s: error %q has no context", name, err)
		}
	}
}

func TestRedisNewUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	logging.Disable() // go-redis logs every failed dial
	defer logging.Enable()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	defer client.Close()
	_, err = store.NewRedis(context.Background(), store.RedisOptions{Client: client})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("NewRedis without a server: %v, want ErrUnavailable", err)
	}
}

func TestRedisOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := store.NewRedis(ctx, store.RedisOptions{}); err == nil {
		t.Error("NewRedis without a client succeeded")
	}
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	for _, p := range []string{"a{b", "a}b"} {
		if _, err := store.NewRedis(ctx, store.RedisOptions{Client: client, Prefix: p}); err == nil {
			t.Errorf("NewRedis with prefix %q succeeded", p)
		}
	}
}

func TestNewRedisClient(t *testing.T) {
	for _, tc := range []struct {
		urls    []string
		cluster bool
		bad     bool
	}{
		{urls: []string{"redis://127.0.0.1:6379/2"}},
		{urls: []string{"rediss://user:pw@example.com:6380"}},
		{urls: []string{"redis://a:1", "redis://b:2", "redis://a:1"}, cluster: true},
		{bad: true},
		{urls: []string{"http://a:1"}, bad: true},
		{urls: []string{"redis://a:1", "redis://b:2/3"}, bad: true},
		{urls: []string{"redis://a:1", "%zz"}, bad: true},
	} {
		c, err := store.NewRedisClient(tc.urls)
		if tc.bad {
			if err == nil {
				_ = c.Close()
				t.Errorf("NewRedisClient(%q) succeeded", tc.urls)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewRedisClient(%q): %v", tc.urls, err)
			continue
		}
		switch c := c.(type) {
		case *redis.ClusterClient:
			if !tc.cluster {
				t.Errorf("NewRedisClient(%q) is a Cluster client", tc.urls)
			}
			if got := c.Options().Addrs; len(got) != 2 {
				t.Errorf("NewRedisClient(%q): cluster addresses %q", tc.urls, got)
			}
		case *redis.Client:
			if tc.cluster {
				t.Errorf("NewRedisClient(%q) is not a Cluster client", tc.urls)
			}
		}
		_ = c.Close()
	}
}

func TestRedisCloseTwice(t *testing.T) {
	s := newRedisStore(t, urls(redistest.Standalone(t))...)
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := s.Ping(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping after Close: %v, want ErrUnavailable", err)
	}
}

// TestRedisClusterSlots fills every kind of key of a room, a user and a client id, and checks
// on the cluster's masters that the keys of each share one slot, and that DeleteRoom leaves
// none of the room's keys.
func TestRedisClusterSlots(t *testing.T) {
	addrs := redistest.Cluster(t)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	prefix := newPrefix()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.NewRedis(ctx, store.RedisOptions{Client: client, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const room, user, clientID = "room-1", "alice", "client-1"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateRoom(ctx, store.Room{Name: room, Owner: user}))
	_, err = s.Append(ctx, room, store.Message{Author: user, Payload: []byte(`{}`)}, 10)
	must(err)
	_, _, err = s.Join(ctx, room, user, clientID, 1)
	must(err)
	for _, l := range []string{store.ListAdmins, store.ListBlacklist, store.ListWhitelist} {
		_, err = s.ListAdd(ctx, store.RoomScope(room), l, []string{"bob"}, 0)
		must(err)
	}
	for _, l := range []string{store.ListBlacklist, store.ListWhitelist} {
		_, err = s.ListAdd(ctx, store.DirectScope(user), l, []string{"bob"}, 0)
		must(err)
	}
	_, err = s.SetWhitelistOnly(ctx, store.DirectScope(user), true)
	must(err)
	_, err = s.AddConnection(ctx, store.Connection{ClientID: clientID, Session: "s", User: user})
	must(err)

	keys := clusterKeys(t, ctx, client, prefix)
	byTag := make(map[string][]string)
	for _, k := range keys {
		if tag, _, ok := strings.Cut(strings.TrimPrefix(k, "{"), "}"); ok && strings.HasPrefix(k, "{") {
			byTag[tag] = append(byTag[tag], k)
		}
	}
	want := map[string]int{
		prefix + ":room:" + room:       8, // settings, history, members, joined, seen, 3 lists
		prefix + ":user:" + user:       6, // connections, their version, owned rooms, settings, 2 lists
		prefix + ":client:" + clientID: 2, // connection, rooms
		prefix + ":instance:":          1, // the connections of instance ""
	}
	for tag, n := range want {
		if len(byTag[tag]) != n {
			t.Errorf("hash tag {%s}: keys %q, want %d", tag, byTag[tag], n)
		}
	}
	for tag, ks := range byTag {
		slot := int64(-1)
		for _, k := range ks {
			got, err := client.ClusterKeySlot(ctx, k).Result()
			must(err)
			if slot >= 0 && got != slot {
				t.Errorf("hash tag {%s}: key %q in slot %d, others in %d", tag, k, got, slot)
			}
			slot = got
		}
	}

	must(s.DeleteRoom(ctx, room))
	for _, k := range clusterKeys(t, ctx, client, prefix) {
		if strings.Contains(k, ":room:"+room) || (strings.Contains(k, ":client:") && strings.HasSuffix(k, ":rooms")) {
			t.Errorf("key %q left after DeleteRoom", k)
		}
	}
}

// clusterKeys returns the keys of a store's prefix on every master.
func clusterKeys(t *testing.T, ctx context.Context, c *redis.ClusterClient, prefix string) []string {
	t.Helper()
	var mu sync.Mutex
	var keys []string
	err := c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		ks, err := node.Keys(ctx, "{"+prefix+":*").Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
