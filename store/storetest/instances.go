package storetest

import (
	"cmp"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomq/roomq/store"
)

// longTTL is a ttl or lease that does not end during a test.
const longTTL = time.Hour

// expiryWait bounds how long a test waits for a short ttl or lease to end, polling every
// pollInterval.
const (
	expiryWait   = 10 * time.Second
	pollInterval = 2 * time.Millisecond
)

func testCountVersions(t *testing.T, s store.Store) {
	var last uint64
	step := func(what string, c store.UserCount, err error, want int) {
		t.Helper()
		checkCount(t, what, c, err, want)
		if c.Version <= last {
			t.Fatalf("%s: version %d after %d; want it to grow", what, c.Version, last)
		}
		last = c.Version
	}
	n, err := s.AddConnection(ctx(t), conn("a1", "s1", "alice"))
	step("AddConnection(a1)", n, err, 1)
	n, err = s.AddConnection(ctx(t), conn("a2", "s2", "alice"))
	step("AddConnection(a2)", n, err, 2)
	n, err = s.AddConnection(ctx(t), conn("b1", "s3", "bob"))
	step("AddConnection(b1)", n, err, 1)
	_, n, err = s.RemoveConnection(ctx(t), "a1", "s1")
	step("RemoveConnection(a1)", n, err, 1)
	_, n, err = s.RemoveConnection(ctx(t), "a2", "s2")
	step("RemoveConnection(a2)", n, err, 0)
}

func checkInstanceConnections(t *testing.T, s store.Store, instance string, want ...store.Connection) {
	t.Helper()
	got, err := s.InstanceConnections(ctx(t), instance)
	if err != nil {
		t.Fatalf("InstanceConnections(%q): %v", instance, err)
	}
	if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
		t.Fatalf("InstanceConnections(%q) = %+v, want %+v", instance, got, want)
	}
}

func testInstanceConnections(t *testing.T, s store.Store) {
	checkInstanceConnections(t, s, "i1")
	c1, c2, c3 := conn("c1", "s1", "alice"), conn("c2", "s2", "bob"), conn("c3", "s3", "bob")
	c1.Will = []byte(`{"topic":"devices/c1/status"}`)
	c3.Instance = "i2"
	for _, c := range []store.Connection{c1, c2, c3} {
		if _, err := s.AddConnection(ctx(t), c); err != nil {
			t.Fatalf("AddConnection(%s): %v", c.ClientID, err)
		}
	}
	c1.Will[0] = 'X' // the store keeps its own copy
	c1.Will[0] = '{'
	checkInstanceConnections(t, s, "i1", c1, c2)
	checkInstanceConnections(t, s, "i2", c3)

	// c2 moves to i2 (a takeover), without a will; c1 is replaced on i1 with another will.
	moved := c2
	moved.Session, moved.Instance = "s4", "i2"
	if _, err := s.AddConnection(ctx(t), moved); err != nil {
		t.Fatalf("AddConnection(moved): %v", err)
	}
	again := c1
	again.Session, again.Will = "s5", []byte("w2")
	if _, err := s.AddConnection(ctx(t), again); err != nil {
		t.Fatalf("AddConnection(again): %v", err)
	}
	checkInstanceConnections(t, s, "i1", again)
	checkInstanceConnections(t, s, "i2", moved, c3)
	// UserConnections leaves the wills out.
	again.Will = nil
	checkConnections(t, s, "alice", again)

	checkRemove(t, s, "c1", "s5", true, 0)
	checkInstanceConnections(t, s, "i1")
	checkRemove(t, s, "c2", "s2", false, 2) // taken over: the instance's record stays
	checkInstanceConnections(t, s, "i2", moved, c3)
}

func heartbeat(t *testing.T, s store.Store, instance string, ttl time.Duration, wantAlive bool) {
	t.Helper()
	alive, err := s.Heartbeat(ctx(t), instance, ttl)
	if err != nil {
		t.Fatalf("Heartbeat(%q): %v", instance, err)
	}
	if alive != wantAlive {
		t.Fatalf("Heartbeat(%q) = %v, want %v", instance, alive, wantAlive)
	}
}

func claim(t *testing.T, s store.Store, lease time.Duration) string {
	t.Helper()
	inst, err := s.ClaimDeadInstance(ctx(t), lease)
	if err != nil {
		t.Fatalf("ClaimDeadInstance: %v", err)
	}
	return inst
}

// waitClaim claims instances with lease until it gets want, for at most expiryWait.
func waitClaim(t *testing.T, s store.Store, lease time.Duration, want string) {
	t.Helper()
	deadline := time.Now().Add(expiryWait)
	for {
		got := claim(t, s, lease)
		if got == want {
			return
		}
		if got != "" {
			t.Fatalf("ClaimDeadInstance = %q, want %q", got, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("ClaimDeadInstance never returned %q", want)
		}
		time.Sleep(pollInterval)
	}
}

func testHeartbeats(t *testing.T, s store.Store) {
	if got := claim(t, s, longTTL); got != "" {
		t.Fatalf("ClaimDeadInstance with no instances = %q", got)
	}
	heartbeat(t, s, "a", longTTL, false) // first heartbeat
	heartbeat(t, s, "a", longTTL, true)
	heartbeat(t, s, "b", time.Millisecond, false)

	waitClaim(t, s, longTTL, "b") // b's ttl ended; a is alive
	if got := claim(t, s, longTTL); got != "" {
		t.Fatalf("ClaimDeadInstance of a claimed instance = %q", got)
	}
	// b comes back while claimed: it learns that it was taken for dead.
	heartbeat(t, s, "b", longTTL, false)
	if err := s.ReleaseDeadInstance(ctx(t), "b"); err != nil {
		t.Fatalf("ReleaseDeadInstance: %v", err)
	}
	heartbeat(t, s, "b", longTTL, true) // the release kept it, alive

	if err := s.RemoveInstance(ctx(t), "b"); err != nil {
		t.Fatalf("RemoveInstance: %v", err)
	}
	heartbeat(t, s, "b", longTTL, false)

	// A cleaner that dies leaves its claim to lapse: another one claims the instance.
	heartbeat(t, s, "c", time.Millisecond, false)
	waitClaim(t, s, time.Millisecond, "c")
	waitClaim(t, s, longTTL, "c")
	if err := s.ReleaseDeadInstance(ctx(t), "c"); err != nil {
		t.Fatalf("ReleaseDeadInstance: %v", err)
	}
	if got := claim(t, s, longTTL); got != "" {
		t.Fatalf("ClaimDeadInstance after the release = %q", got)
	}
	heartbeat(t, s, "c", longTTL, false) // forgotten
}

func testClaimOnce(t *testing.T, s store.Store) {
	heartbeat(t, s, "dead", time.Millisecond, false)
	const cleaners = 8
	var claims atomic.Int32
	var claimed atomic.Bool
	var wg sync.WaitGroup
	deadline := time.Now().Add(expiryWait)
	for range cleaners {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				done := claimed.Load() // one more try after somebody claimed it
				inst, err := s.ClaimDeadInstance(ctx(t), longTTL)
				if err != nil {
					t.Errorf("ClaimDeadInstance: %v", err)
					return
				}
				if inst == "dead" {
					claims.Add(1)
					claimed.Store(true)
				}
				if done {
					return
				}
				time.Sleep(pollInterval)
			}
		})
	}
	wg.Wait()
	if n := claims.Load(); n != 1 {
		t.Fatalf("the dead instance was claimed %d times by %d cleaners, want once", n, cleaners)
	}
}

func testPresences(t *testing.T, s store.Store) {
	set := func(user string, version uint64, payload string) {
		t.Helper()
		if err := s.SetPresence(ctx(t), store.Presence{User: user, Version: version, Payload: []byte(payload)}); err != nil {
			t.Fatalf("SetPresence(%s, %d): %v", user, version, err)
		}
	}
	check := func(want ...store.Presence) {
		t.Helper()
		got, err := s.Presences(ctx(t))
		if err != nil {
			t.Fatalf("Presences: %v", err)
		}
		slices.SortFunc(got, func(a, b store.Presence) int { return cmp.Compare(a.User, b.User) })
		if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
			t.Fatalf("Presences = %+v, want %+v", got, want)
		}
	}
	check()
	set("alice", 1700000000000002, `{"online":true}`)
	set("alice", 1700000000000001, `{"online":false}`) // older: ignored
	set("bob", 5, `{"online":true, "n": "a b"}`)
	check(store.Presence{User: "alice", Version: 1700000000000002, Payload: []byte(`{"online":true}`)},
		store.Presence{User: "bob", Version: 5, Payload: []byte(`{"online":true, "n": "a b"}`)})
	set("alice", 1700000000000003, `{"online":false}`)
	check(store.Presence{User: "alice", Version: 1700000000000003, Payload: []byte(`{"online":false}`)},
		store.Presence{User: "bob", Version: 5, Payload: []byte(`{"online":true, "n": "a b"}`)})
}
