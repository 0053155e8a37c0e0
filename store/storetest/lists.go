package storetest

import (
	"errors"
	"testing"

	"github.com/roomq/roomq/store"
)

func checkListed(t *testing.T, s store.Store, scope store.Scope, user string, want store.Listed) {
	t.Helper()
	_, _, got, err := s.Access(ctx(t), scope, user)
	if err != nil || got != want {
		t.Errorf("Access(%+v, %q) listed = %+v, %v; want %+v", scope, user, got, err, want)
	}
}

func testAccessLists(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	room := store.RoomScope("r")
	added, err := s.ListAdd(ctx(t), room, store.ListBlacklist, []string{"bob", "carol", "bob"}, 0)
	checkStrings(t, "ListAdd", added, err, []string{"bob", "carol"})
	added, err = s.ListAdd(ctx(t), room, store.ListBlacklist, []string{"carol", "dave"}, 0)
	checkStrings(t, "ListAdd again", added, err, []string{"dave"})
	users, err := s.ListUsers(ctx(t), room, store.ListBlacklist)
	checkStrings(t, "ListUsers", users, err, []string{"bob", "carol", "dave"})
	users, err = s.ListUsers(ctx(t), room, store.ListWhitelist)
	checkStrings(t, "ListUsers of an empty list", users, err, []string{})
	removed, err := s.ListRemove(ctx(t), room, store.ListBlacklist, []string{"carol", "erin"})
	checkStrings(t, "ListRemove", removed, err, []string{"carol"})
	checkListed(t, s, room, "bob", store.Listed{Blacklisted: true})
	checkListed(t, s, room, "carol", store.Listed{})

	_, err = s.ListAdd(ctx(t), room, store.ListAdmins, []string{"bob"}, 0)
	checkListed(t, s, room, "bob", store.Listed{Admin: true, Blacklisted: true})
	if err != nil {
		t.Errorf("ListAdd adminlist: %v", err)
	}
	_, err = s.ListAdd(ctx(t), room, store.ListWhitelist, []string{"bob"}, 0)
	checkListed(t, s, room, "bob", store.Listed{Admin: true, Blacklisted: true, Whitelisted: true})
	if err != nil {
		t.Errorf("ListAdd whitelist: %v", err)
	}
	r, _, _, err := s.Access(ctx(t), room, "bob")
	if err != nil || r.Name != "r" {
		t.Errorf("Access room = %+v, %v", r, err)
	}

	// Direct-message lists are per user and have no adminlist.
	direct := store.DirectScope("alice")
	added, err = s.ListAdd(ctx(t), direct, store.ListWhitelist, []string{"bob"}, 0)
	checkStrings(t, "direct ListAdd", added, err, []string{"bob"})
	checkListed(t, s, direct, "bob", store.Listed{Whitelisted: true})
	checkListed(t, s, store.DirectScope("nobody"), "bob", store.Listed{})
	if _, err := s.ListAdd(ctx(t), direct, store.ListAdmins, []string{"bob"}, 0); !errors.Is(err, store.ErrNoList) {
		t.Errorf("direct adminlist: %v, want ErrNoList", err)
	}
	if _, err := s.ListUsers(ctx(t), room, "userlist"); !errors.Is(err, store.ErrNoList) {
		t.Errorf("ListUsers(userlist): %v, want ErrNoList", err)
	}

	// Deleting a room deletes its lists: a new room of that name starts clean.
	if err := s.DeleteRoom(ctx(t), "r"); err != nil {
		t.Fatal(err)
	}
	createRoom(t, s, "r")
	checkListed(t, s, room, "bob", store.Listed{})
}

func testAccessListLimit(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	room := store.RoomScope("r")
	if _, err := s.ListAdd(ctx(t), room, store.ListWhitelist, []string{"a", "b"}, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListAdd(ctx(t), room, store.ListWhitelist, []string{"c", "d"}, 3); !errors.Is(err, store.ErrListLimit) {
		t.Errorf("over the limit: %v, want ErrListLimit", err)
	}
	users, err := s.ListUsers(ctx(t), room, store.ListWhitelist)
	checkStrings(t, "after a refused add", users, err, []string{"a", "b"})
	added, err := s.ListAdd(ctx(t), room, store.ListWhitelist, []string{"a", "c"}, 3)
	checkStrings(t, "up to the limit", added, err, []string{"c"})
}

func testWhitelistMode(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	room := store.RoomScope("r")
	changed, err := s.SetWhitelistOnly(ctx(t), room, true)
	if err != nil || !changed {
		t.Fatalf("SetWhitelistOnly = %v, %v", changed, err)
	}
	if changed, _ := s.SetWhitelistOnly(ctx(t), room, true); changed {
		t.Error("setting the same mode again reports a change")
	}
	if r, err := s.Room(ctx(t), "r"); err != nil || !r.WhitelistOnly {
		t.Errorf("Room after SetWhitelistOnly = %+v, %v", r, err)
	}
	_, on, _, err := s.Access(ctx(t), room, "x")
	if err != nil || !on {
		t.Errorf("Access mode = %v, %v; want true", on, err)
	}
	direct := store.DirectScope("alice")
	if _, on, _, _ := s.Access(ctx(t), direct, "x"); on {
		t.Error("a user's direct mode is whitelist-only before it was set")
	}
	if changed, err := s.SetWhitelistOnly(ctx(t), direct, true); err != nil || !changed {
		t.Errorf("direct SetWhitelistOnly = %v, %v", changed, err)
	}
	if _, on, _, _ := s.Access(ctx(t), direct, "x"); !on {
		t.Error("direct mode not stored")
	}
	if err := s.CreateRoom(ctx(t), store.Room{Name: "w", Owner: "o", WhitelistOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, on, _, _ := s.Access(ctx(t), store.RoomScope("w"), "x"); !on {
		t.Error("a room created whitelist-only is not")
	}
}

func testAccessListsNoRoom(t *testing.T, s store.Store) {
	scope := store.RoomScope("missing")
	_, err := s.ListAdd(ctx(t), scope, store.ListBlacklist, []string{"a"}, 0)
	checkNoRoom(t, "ListAdd", err)
	_, err = s.ListRemove(ctx(t), scope, store.ListBlacklist, []string{"a"})
	checkNoRoom(t, "ListRemove", err)
	_, err = s.ListUsers(ctx(t), scope, store.ListBlacklist)
	checkNoRoom(t, "ListUsers", err)
	_, err = s.SetWhitelistOnly(ctx(t), scope, true)
	checkNoRoom(t, "SetWhitelistOnly", err)
	_, _, _, err = s.Access(ctx(t), scope, "a")
	checkNoRoom(t, "Access", err)
}

func testCountOwnedRooms(t *testing.T, s store.Store) {
	for _, r := range []store.Room{{Name: "a", Owner: "ann"}, {Name: "b", Owner: "ann"}, {Name: "c", Owner: "bo"}} {
		if err := s.CreateRoom(ctx(t), r); err != nil {
			t.Fatal(err)
		}
	}
	for owner, want := range map[string]int{"ann": 2, "bo": 1, "cy": 0} {
		if n, err := s.CountOwnedRooms(ctx(t), owner); err != nil || n != want {
			t.Errorf("CountOwnedRooms(%q) = %d, %v; want %d", owner, n, err, want)
		}
	}
	if err := s.DeleteRoom(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountOwnedRooms(ctx(t), "ann"); n != 1 {
		t.Errorf("after a delete: %d, want 1", n)
	}
}
