package store_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomq/roomq/internal/redistest"
	"github.com/roomq/roomq/store"
)

// TestRedisLeftovers plants the index entries that a crash between the steps of CreateRoom,
// DeleteRoom, Join or AddConnection can leave, and checks that the readers skip or repair
// them.
func TestRedisLeftovers(t *testing.T) {
	addr := redistest.Standalone(t)
	raw := redis.NewClient(&redis.Options{Addr: addr})
	defer raw.Close()
	const p = "leftovers"
	s, err := store.NewRedis(context.Background(), store.RedisOptions{Client: redis.NewClient(&redis.Options{Addr: addr}), Prefix: p})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateRoom(ctx, store.Room{Name: "real", Owner: "ann"}))
	// A room that a crash left in the indexes only, and one that was given to another owner.
	must(raw.SAdd(ctx, p+":rooms", "ghost").Err())
	must(raw.SAdd(ctx, "{"+p+":user:ann}:owned", "ghost", "bobs").Err())
	must(s.CreateRoom(ctx, store.Room{Name: "bobs", Owner: "bob"}))
	// A client id indexed in a room it has not joined.
	must(raw.SAdd(ctx, "{"+p+":client:c1}:rooms", "real", "ghost").Err())
	// A connection indexed for a user whose client id is held by another user, and one
	// whose client id holds nothing.
	if _, err := s.AddConnection(ctx, store.Connection{ClientID: "c2", Session: "s", User: "bob"}); err != nil {
		t.Fatal(err)
	}
	must(raw.HSet(ctx, "{"+p+":user:ann}:conns", "c2", `1 {"s":"old"}`, "c3", `2 {"s":"x"}`).Err())

	names, err := s.RoomNames(ctx)
	if err != nil || !slices.Equal(names, []string{"bobs", "real"}) {
		t.Errorf("RoomNames = %q, %v; want [bobs real]", names, err)
	}
	if n, err := s.CountOwnedRooms(ctx, "ann"); err != nil || n != 1 {
		t.Errorf("CountOwnedRooms(ann) = %d, %v; want 1", n, err)
	}
	if rooms, err := s.ClientRooms(ctx, "c1"); err != nil || len(rooms) != 0 {
		t.Errorf("ClientRooms(c1) = %q, %v; want none", rooms, err)
	}
	if conns, err := s.UserConnections(ctx, "ann"); err != nil || len(conns) != 0 {
		t.Errorf("UserConnections(ann) = %+v, %v; want none", conns, err)
	}
	if n, err := raw.HLen(ctx, "{"+p+":user:ann}:conns").Result(); err != nil || n != 0 {
		t.Errorf("stale connections of ann left: %d, %v", n, err)
	}
	n, err := s.AddConnection(ctx, store.Connection{ClientID: "c4", Session: "s", User: "bob"})
	if err != nil || n.N != 2 {
		t.Errorf("AddConnection = %d, %v; want 2", n.N, err)
	}
	// Leave repairs the client id's index.
	if _, _, err := s.Leave(ctx, "ghost", "ann", "c1", 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Leave(ctx, "real", "ann", "c1", 1); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.SCard(ctx, "{"+p+":client:c1}:rooms").Result(); err != nil || n != 0 {
		t.Errorf("client rooms left after Leave: %d, %v", n, err)
	}
}

// TestRedisConcurrentTakeover records connections of one client id for several users and
// sessions at once, and checks that exactly the last one is left, in its user's index.
func TestRedisConcurrentTakeover(t *testing.T) {
	s := newRedisStore(t, urls(redistest.Standalone(t))...)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	users := []string{"ann", "bob", "cy"}
	for round := range 20 {
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Go(func() {
				c := store.Connection{ClientID: "c", Session: fmt.Sprint(round, "-", w), User: users[w%len(users)]}
				if _, err := s.AddConnection(ctx, c); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		var holders []store.Connection
		for _, u := range users {
			conns, err := s.UserConnections(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			holders = append(holders, conns...)
		}
		if len(holders) != 1 {
			t.Fatalf("round %d: connections of c: %+v, want one", round, holders)
		}
		removed, left, err := s.RemoveConnection(ctx, "c", holders[0].Session)
		if err != nil || !removed || left.N != 0 {
			t.Fatalf("round %d: RemoveConnection(%q) = %v, %d, %v; want true, 0", round, holders[0].Session, removed, left.N, err)
		}
	}
}

// TestRedisExtremes checks arguments that Lua numbers and Redis hash tags could get wrong.
func TestRedisExtremes(t *testing.T) {
	s := newRedisStore(t, urls(redistest.Standalone(t))...)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, room := range []string{"a}b", "{x}", "}:room", ""} {
		if err := s.CreateRoom(ctx, store.Room{Name: room, Owner: "o}"}); err != nil {
			t.Fatalf("CreateRoom(%q): %v", room, err)
		}
		for range 3 {
			if _, err := s.Append(ctx, room, store.Message{Payload: []byte("x")}, math.MaxInt); err != nil {
				t.Fatalf("Append(%q, MaxInt): %v", room, err)
			}
		}
		if _, _, err := s.Join(ctx, room, "u{", "c}:rooms", 1); err != nil {
			t.Fatal(err)
		}
		for _, after := range []uint64{0, 2, math.MaxUint64} {
			msgs, err := s.Range(ctx, room, after, math.MaxInt)
			if want := 3 - min(after, 3); err != nil || uint64(len(msgs)) != want {
				t.Errorf("Range(%q, %d, MaxInt) = %d messages, %v; want %d", room, after, len(msgs), err, want)
			}
		}
		if msgs, err := s.Recent(ctx, room, math.MaxInt); err != nil || len(msgs) != 3 || msgs[0].ID != 1 {
			t.Errorf("Recent(%q, MaxInt) = %+v, %v", room, msgs, err)
		}
		if _, err := s.ListAdd(ctx, store.RoomScope(room), store.ListWhitelist, []string{"a"}, math.MaxInt); err != nil {
			t.Errorf("ListAdd(limit MaxInt): %v", err)
		}
	}
	names, err := s.RoomNames(ctx)
	if err != nil || !slices.Equal(names, []string{"", "a}b", "{x}", "}:room"}) {
		t.Errorf("RoomNames = %q, %v", names, err)
	}
	rooms, err := s.ClientRooms(ctx, "c}:rooms")
	if err != nil || len(rooms) != 4 {
		t.Errorf("ClientRooms = %q, %v", rooms, err)
	}
	for _, room := range names {
		if err := s.DeleteRoom(ctx, room); err != nil {
			t.Errorf("DeleteRoom(%q): %v", room, err)
		}
		if _, err := s.Room(ctx, room); err == nil {
			t.Errorf("Room(%q) after DeleteRoom", room)
		}
	}
	if n, err := s.CountOwnedRooms(ctx, "o}"); err != nil || n != 0 {
		t.Errorf("CountOwnedRooms = %d, %v", n, err)
	}
}

// TestRedisConcurrentJoinLeave joins and leaves one client id to one room from several
// goroutines at once, and checks after each round that the client id's index of rooms holds
// the room whenever the client id is joined.
func TestRedisConcurrentJoinLeave(t *testing.T) {
	addr := redistest.Standalone(t)
	raw := redis.NewClient(&redis.Options{Addr: addr})
	defer raw.Close()
	const p = "joinleave"
	s, err := store.NewRedis(context.Background(), store.RedisOptions{Client: redis.NewClient(&redis.Options{Addr: addr}), Prefix: p})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CreateRoom(ctx, store.Room{Name: "r", Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	users := []string{"ann", "bob"}
	for round := range 50 {
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 5 {
					u := users[(w+i)%len(users)]
					var err error
					if (round+w+i)%3 == 0 {
						_, _, err = s.Leave(ctx, "r", u, "c", int64(i))
					} else {
						_, _, err = s.Join(ctx, "r", u, "c", int64(i))
					}
					if err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		joined, err := raw.HExists(ctx, "{"+p+":room:r}:members", "c").Result()
		if err != nil {
			t.Fatal(err)
		}
		indexed, err := raw.SIsMember(ctx, "{"+p+":client:c}:rooms", "r").Result()
		if err != nil {
			t.Fatal(err)
		}
		if joined && !indexed {
			t.Fatalf("round %d: c is joined to r but its index of rooms lacks r", round)
		}
		rooms, err := s.ClientRooms(ctx, "c")
		if err != nil || (len(rooms) == 1) != joined {
			t.Fatalf("round %d: ClientRooms = %q, %v; joined %v", round, rooms, err, joined)
		}
	}
}
