// Package storetest is the conformance suite of store.Store. The tests of every Store
// implementation call Run with a factory for their store, so that all implementations are held
// to the same documented behaviour; their benchmarks call BenchAppend, BenchAppendSubscribed
// and BenchRange so that the figures compare.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/roomq/roomq/store"
)

// callTimeout bounds the context of every store call made by the suite.
const callTimeout = 30 * time.Second

// benchHistorySize is the history size used by the benchmarks, the broker's default.
const benchHistorySize = 10000

// Run runs the conformance suite as subtests of t. Each subtest calls newStore for a new,
// empty store, and closes it when the subtest ends. newStore may register its own cleanup
// with t.Cleanup and must fail t if it cannot build the store.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Rooms", testRooms},
		{"RoomNotFound", testRoomNotFound},
		{"ConcurrentCreate", testConcurrentCreate},
		{"EpochOnRecreate", testEpochOnRecreate},
		{"EmptyHistory", testEmptyHistory},
		{"AppendIDs", testAppendIDs},
		{"Trim", testTrim},
		{"TrimShrink", testTrimShrink},
		{"RangeEdges", testRangeEdges},
		{"PayloadIsolation", testPayloadIsolation},
		{"HistoryNoRoom", testHistoryNoRoom},
		{"ConcurrentAppend", testConcurrentAppend},
		{"ConcurrentAppendRead", testConcurrentAppendRead},
		{"Connections", testConnections},
		{"ConnectionTakeover", testConnectionTakeover},
		{"CountVersions", testCountVersions},
		{"InstanceConnections", testInstanceConnections},
		{"Heartbeats", testHeartbeats},
		{"ClaimOnce", testClaimOnce},
		{"Presences", testPresences},
		{"Routes", testRoutes},
		{"Mailbox", testMailbox},
		{"Retained", testRetained},
		{"Replies", testReplies},
		{"AppendBatch", testAppendBatch},
		{"Membership", testMembership},
		{"MembershipNoRoom", testMembershipNoRoom},
		{"MembershipTakenOverClient", testMembershipTakenOverClient},
		{"ClientRooms", testClientRooms},
		{"DeleteRoomClearsMembership", testDeleteRoomClearsMembership},
		{"Ping", testPing},
		{"AccessLists", testAccessLists},
		{"AccessListLimit", testAccessListLimit},
		{"WhitelistMode", testWhitelistMode},
		{"AccessListsNoRoom", testAccessListsNoRoom},
		{"CountOwnedRooms", testCountOwnedRooms},
		{"Broadcast", testBroadcast},
		{"FeedDelivery", testFeedDelivery},
		{"FeedCancel", testFeedCancel},
		{"FeedCancelWaits", testFeedCancelWaits},
		{"FeedEpoch", testFeedEpoch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// BenchAppend measures Append of a 64-byte message to one room whose history keeps
// 10000 messages. s must be empty.
func BenchAppend(b *testing.B, s store.Store) {
	ctx := context.Background()
	if err := s.CreateRoom(ctx, store.Room{Name: "bench", Owner: "bench"}); err != nil {
		b.Fatalf("CreateRoom: %v", err)
	}
	m := benchMessage()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(ctx, "bench", m, benchHistorySize); err != nil {
			b.Fatalf("Append: %v", err)
		}
	}
}

// BenchRange measures Range reads of n messages from a full history of 10000 messages,
// starting at ids spread over the whole history. s must be empty.
func BenchRange(b *testing.B, s store.Store, n int) {
	ctx := context.Background()
	if err := s.CreateRoom(ctx, store.Room{Name: "bench", Owner: "bench"}); err != nil {
		b.Fatalf("CreateRoom: %v", err)
	}
	m := benchMessage()
	for range benchHistorySize {
		if _, err := s.Append(ctx, "bench", m, benchHistorySize); err != nil {
			b.Fatalf("Append: %v", err)
		}
	}
	span := uint64(max(benchHistorySize-n, 1))
	var after uint64
	b.ReportAllocs()
	for b.Loop() {
		msgs, err := s.Range(ctx, "bench", after, n)
		if err != nil {
			b.Fatalf("Range: %v", err)
		}
		if len(msgs) != min(n, benchHistorySize-int(after)) {
			b.Fatalf("Range(%d, %d) returned %d messages", after, n, len(msgs))
		}
		after = (after + 7919) % span
	}
}

func benchMessage() store.Message {
	return store.Message{
		Author:    "bench",
		Timestamp: time.Now().UnixMilli(),
		Payload:   []byte(`{"textMessage":"the quick brown fox jumps over the lazy dog.."}`),
	}
}

// ctx returns a context for store calls that ends with the test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return c
}

func createRoom(t *testing.T, s store.Store, name string) {
	t.Helper()
	if err := s.CreateRoom(ctx(t), store.Room{Name: name, Owner: "owner", Checker: "json", CreatedAt: 1}); err != nil {
		t.Fatalf("CreateRoom(%q): %v", name, err)
	}
}

func message(i int) store.Message {
	return store.Message{
		Author:    fmt.Sprintf("user%d", i%3),
		Timestamp: int64(1000 + i),
		Payload:   fmt.Appendf(nil, `{"n":%d}`, i),
	}
}

// appendN appends message(1) to message(n) to room and fails t unless they get consecutive ids
// following the room's last id.
func appendN(t *testing.T, s store.Store, room string, n, maxSize int) {
	t.Helper()
	info, err := s.HistoryInfo(ctx(t), room)
	if err != nil {
		t.Fatalf("HistoryInfo(%q): %v", room, err)
	}
	for i := 1; i <= n; i++ {
		got, err := s.Append(ctx(t), room, message(i), maxSize)
		if err != nil {
			t.Fatalf("Append(%q) #%d: %v", room, i, err)
		}
		if want := info.LastID + uint64(i); got.ID != want {
			t.Fatalf("Append(%q) #%d: id %d, want %d", room, i, got.ID, want)
		}
	}
}

func ids(msgs []store.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// span returns the ids from..to, or an empty slice when to < from.
func span(from, to uint64) []uint64 {
	out := []uint64{}
	for id := from; id <= to && to != 0; id++ {
		out = append(out, id)
	}
	return out
}

func checkIDs(t *testing.T, what string, msgs []store.Message, err error, want []uint64) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got := ids(msgs); !slices.Equal(got, want) {
		t.Fatalf("%s: ids %v, want %v", what, got, want)
	}
}

func checkInfo(t *testing.T, s store.Store, room string, lastID, firstID uint64, size int) store.HistoryInfo {
	t.Helper()
	info, err := s.HistoryInfo(ctx(t), room)
	if err != nil {
		t.Fatalf("HistoryInfo(%q): %v", room, err)
	}
	if info.LastID != lastID || info.FirstID != firstID || info.Size != size {
		t.Fatalf("HistoryInfo(%q) = last %d, first %d, size %d; want %d, %d, %d",
			room, info.LastID, info.FirstID, info.Size, lastID, firstID, size)
	}
	if info.Epoch == "" {
		t.Fatalf("HistoryInfo(%q): empty epoch", room)
	}
	return info
}

func checkStrings(t *testing.T, what string, got []string, err error, want []string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(got) != len(want) || (len(want) > 0 && !slices.Equal(got, want)) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

func checkNoRoom(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNoRoom) {
		t.Fatalf("%s: error %v, want ErrNoRoom", what, err)
	}
}

func testRooms(t *testing.T, s store.Store) {
	names, err := s.RoomNames(ctx(t))
	checkStrings(t, "RoomNames of an empty store", names, err, nil)

	want := store.Room{
		Name:              "b",
		Owner:             "alice",
		Checker:           "text",
		WhitelistOnly:     true,
		NotifyAccessLists: true,
		NotifyUserlist:    true,
		CreatedAt:         1700000000000,
	}
	if err := s.CreateRoom(ctx(t), want); err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	got, err := s.Room(ctx(t), "b")
	if err != nil || got != want {
		t.Fatalf("Room = %+v, %v; want %+v", got, err, want)
	}

	other := want
	other.Owner = "bob"
	if err := s.CreateRoom(ctx(t), other); !errors.Is(err, store.ErrRoomExists) {
		t.Fatalf("CreateRoom of an existing name: %v, want ErrRoomExists", err)
	}
	if got, _ := s.Room(ctx(t), "b"); got != want {
		t.Fatalf("a refused CreateRoom changed the room: %+v", got)
	}

	createRoom(t, s, "c")
	createRoom(t, s, "a")
	names, err = s.RoomNames(ctx(t))
	checkStrings(t, "RoomNames", names, err, []string{"a", "b", "c"})

	if err := s.DeleteRoom(ctx(t), "b"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	_, err = s.Room(ctx(t), "b")
	checkNoRoom(t, "Room after DeleteRoom", err)
	checkNoRoom(t, "DeleteRoom twice", s.DeleteRoom(ctx(t), "b"))
	names, err = s.RoomNames(ctx(t))
	checkStrings(t, "RoomNames after DeleteRoom", names, err, []string{"a", "c"})

	if err := s.CreateRoom(ctx(t), other); err != nil {
		t.Fatalf("CreateRoom after DeleteRoom: %v", err)
	}
	if got, _ := s.Room(ctx(t), "b"); got != other {
		t.Fatalf("Room after re-create = %+v, want %+v", got, other)
	}
}

func testRoomNotFound(t *testing.T, s store.Store) {
	_, err := s.Room(ctx(t), "nope")
	checkNoRoom(t, "Room", err)
	checkNoRoom(t, "DeleteRoom", s.DeleteRoom(ctx(t), "nope"))
}

func testConcurrentCreate(t *testing.T, s store.Store) {
	const workers = 8
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			errs[w] = s.CreateRoom(c, store.Room{Name: "same", Owner: fmt.Sprint(w)})
			if err := s.CreateRoom(c, store.Room{Name: fmt.Sprint("room", w)}); err != nil {
				t.Errorf("CreateRoom(room%d): %v", w, err)
			}
		})
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, store.ErrRoomExists):
			t.Fatalf("CreateRoom: %v, want nil or ErrRoomExists", err)
		}
	}
	if created != 1 {
		t.Fatalf("%d concurrent CreateRoom calls of one name succeeded, want 1", created)
	}
	names, err := s.RoomNames(c)
	checkStrings(t, "RoomNames", names, err,
		[]string{"room0", "room1", "room2", "room3", "room4", "room5", "room6", "room7", "same"})
}

func testEpochOnRecreate(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	appendN(t, s, "r", 3, 10)
	first := checkInfo(t, s, "r", 3, 1, 3)
	again := checkInfo(t, s, "r", 3, 1, 3)
	if again.Epoch != first.Epoch {
		t.Fatalf("epoch changed without re-create: %q then %q", first.Epoch, again.Epoch)
	}

	if err := s.DeleteRoom(ctx(t), "r"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	createRoom(t, s, "r")
	second := checkInfo(t, s, "r", 0, 0, 0)
	if second.Epoch == first.Epoch {
		t.Fatalf("re-created room kept epoch %q", first.Epoch)
	}
	msgs, err := s.Range(ctx(t), "r", 0, 10)
	checkIDs(t, "Range after re-create", msgs, err, nil)
	appendN(t, s, "r", 1, 10)
	checkInfo(t, s, "r", 1, 1, 1)
}

func testEmptyHistory(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	checkInfo(t, s, "r", 0, 0, 0)
	msgs, err := s.Range(ctx(t), "r", 0, 10)
	checkIDs(t, "Range", msgs, err, nil)
	msgs, err = s.Recent(ctx(t), "r", 10)
	checkIDs(t, "Recent", msgs, err, nil)
}

func testAppendIDs(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	createRoom(t, s, "other")
	for i := 1; i <= 5; i++ {
		in := message(i)
		in.ID = 99 // ignored: Append assigns the id
		in.Binary = i%2 == 0
		got, err := s.Append(ctx(t), "r", in, 100)
		if err != nil {
			t.Fatalf("Append #%d: %v", i, err)
		}
		if got.ID != uint64(i) || got.Author != in.Author || got.Timestamp != in.Timestamp ||
			got.Binary != in.Binary || !bytes.Equal(got.Payload, in.Payload) {
			t.Fatalf("Append #%d returned %+v for %+v", i, got, in)
		}
	}
	checkInfo(t, s, "r", 5, 1, 5)
	checkInfo(t, s, "other", 0, 0, 0)
	appendN(t, s, "other", 2, 100) // ids are per room

	msgs, err := s.Range(ctx(t), "r", 0, 100)
	checkIDs(t, "Range", msgs, err, span(1, 5))
	for i, m := range msgs {
		want := message(i + 1)
		if m.Author != want.Author || m.Timestamp != want.Timestamp || m.Binary != ((i+1)%2 == 0) ||
			!bytes.Equal(m.Payload, want.Payload) {
			t.Fatalf("stored message %d = %+v, want %+v", m.ID, m, want)
		}
	}
}

func testTrim(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	appendN(t, s, "r", 12, 5)
	checkInfo(t, s, "r", 12, 8, 5)

	msgs, err := s.Range(ctx(t), "r", 0, 100)
	checkIDs(t, "Range(0, 100)", msgs, err, span(8, 12))
	msgs, err = s.Range(ctx(t), "r", 3, 2)
	checkIDs(t, "Range(3, 2) from before FirstID", msgs, err, span(8, 9))
	msgs, err = s.Range(ctx(t), "r", 7, 100)
	checkIDs(t, "Range(FirstID-1, 100)", msgs, err, span(8, 12))
	msgs, err = s.Range(ctx(t), "r", 9, 2)
	checkIDs(t, "Range(9, 2)", msgs, err, span(10, 11))
	msgs, err = s.Recent(ctx(t), "r", 3)
	checkIDs(t, "Recent(3)", msgs, err, span(10, 12))
	msgs, err = s.Recent(ctx(t), "r", 100)
	checkIDs(t, "Recent(100)", msgs, err, span(8, 12))

	for i, m := range msgs {
		if want := message(i + 8); !bytes.Equal(m.Payload, want.Payload) {
			t.Fatalf("message %d has payload %s, want %s", m.ID, m.Payload, want.Payload)
		}
	}
}

func testTrimShrink(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	appendN(t, s, "r", 30, 100)
	checkInfo(t, s, "r", 30, 1, 30)
	appendN(t, s, "r", 1, 10) // a smaller maxSize trims at once
	checkInfo(t, s, "r", 31, 22, 10)
	msgs, err := s.Range(ctx(t), "r", 0, 100)
	checkIDs(t, "Range after shrink", msgs, err, span(22, 31))
	appendN(t, s, "r", 5, 100) // a larger one lets the history grow again
	checkInfo(t, s, "r", 36, 22, 15)
	msgs, err = s.Recent(ctx(t), "r", 100)
	checkIDs(t, "Recent after growth", msgs, err, span(22, 36))
}

func testRangeEdges(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	appendN(t, s, "r", 10, 100)
	cases := []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 3, span(1, 3)},
		{0, 10, span(1, 10)},
		{0, 11, span(1, 10)},
		{4, 3, span(5, 7)},
		{9, 5, span(10, 10)},
		{10, 5, nil}, // afterID == LastID
		{11, 5, nil},
		{1 << 62, 5, nil},
		{4, 0, nil},
		{4, -1, nil},
	}
	for _, c := range cases {
		msgs, err := s.Range(ctx(t), "r", c.after, c.limit)
		checkIDs(t, fmt.Sprintf("Range(%d, %d)", c.after, c.limit), msgs, err, c.want)
	}
	for _, c := range []struct {
		limit int
		want  []uint64
	}{{1, span(10, 10)}, {10, span(1, 10)}, {11, span(1, 10)}, {0, nil}, {-1, nil}} {
		msgs, err := s.Recent(ctx(t), "r", c.limit)
		checkIDs(t, fmt.Sprintf("Recent(%d)", c.limit), msgs, err, c.want)
	}
}

func testPayloadIsolation(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	in := []byte(`{"a":"first"}`)
	want := bytes.Clone(in)
	got, err := s.Append(ctx(t), "r", store.Message{Author: "a", Timestamp: 1, Payload: in}, 10)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	in[0] = 'X'
	got.Payload[1] = 'Y'
	if _, err := s.Append(ctx(t), "r", store.Message{Author: "a", Timestamp: 2, Payload: []byte(`{"b":2}`)}, 10); err != nil {
		t.Fatalf("Append: %v", err)
	}

	check := func(when string) {
		t.Helper()
		for name, read := range map[string]func() ([]store.Message, error){
			"Range":  func() ([]store.Message, error) { return s.Range(ctx(t), "r", 0, 10) },
			"Recent": func() ([]store.Message, error) { return s.Recent(ctx(t), "r", 10) },
		} {
			msgs, err := read()
			checkIDs(t, name+" "+when, msgs, err, span(1, 2))
			if !bytes.Equal(msgs[0].Payload, want) || string(msgs[1].Payload) != `{"b":2}` {
				t.Fatalf("%s %s: payloads %s, %s", name, when, msgs[0].Payload, msgs[1].Payload)
			}
		}
	}
	check("after changing the Append input and result")

	for _, read := range []func() ([]store.Message, error){
		func() ([]store.Message, error) { return s.Range(ctx(t), "r", 0, 10) },
		func() ([]store.Message, error) { return s.Recent(ctx(t), "r", 10) },
	} {
		msgs, err := read()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		msgs[0].Payload[0] = 'Z'
		// Appending to one returned payload must not write over its neighbour.
		msgs[0].Payload = append(msgs[0].Payload, "tail"...)
		if string(msgs[1].Payload) != `{"b":2}` {
			t.Fatalf("appending to a returned payload changed the next one to %s", msgs[1].Payload)
		}
		msgs[1].Payload[0] = 'W'
	}
	check("after changing read results")
}

func testHistoryNoRoom(t *testing.T, s store.Store) {
	check := func(when string) {
		t.Helper()
		_, err := s.Append(ctx(t), "gone", message(1), 10)
		checkNoRoom(t, "Append "+when, err)
		_, err = s.Range(ctx(t), "gone", 0, 10)
		checkNoRoom(t, "Range "+when, err)
		_, err = s.Recent(ctx(t), "gone", 10)
		checkNoRoom(t, "Recent "+when, err)
		_, err = s.HistoryInfo(ctx(t), "gone")
		checkNoRoom(t, "HistoryInfo "+when, err)
	}
	check("of a room never created")
	createRoom(t, s, "gone")
	appendN(t, s, "gone", 3, 10)
	if err := s.DeleteRoom(ctx(t), "gone"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	check("of a deleted room")
}

func testConcurrentAppend(t *testing.T, s store.Store) {
	const workers, each = 8, 200
	createRoom(t, s, "r")
	c := ctx(t)
	var wg sync.WaitGroup
	got := make([][]store.Message, workers)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m := message(w*each + i)
				out, err := s.Append(c, "r", m, workers*each)
				if err != nil {
					errs <- fmt.Errorf("worker %d: Append: %w", w, err)
					return
				}
				got[w] = append(got[w], out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	byID := make(map[uint64][]byte)
	var all []uint64
	for w, msgs := range got {
		for i, m := range msgs {
			if i > 0 && m.ID <= msgs[i-1].ID {
				t.Fatalf("worker %d got id %d after %d", w, m.ID, msgs[i-1].ID)
			}
			all = append(all, m.ID)
			byID[m.ID] = m.Payload
		}
	}
	slices.Sort(all)
	if want := span(1, workers*each); !slices.Equal(all, want) {
		t.Fatalf("ids are not exactly 1..%d: %d ids, first %v, last %v",
			workers*each, len(all), all[:min(5, len(all))], all[max(0, len(all)-5):])
	}

	checkInfo(t, s, "r", workers*each, 1, workers*each)
	msgs, err := s.Range(ctx(t), "r", 0, workers*each)
	checkIDs(t, "Range", msgs, err, span(1, workers*each))
	for _, m := range msgs {
		if !bytes.Equal(m.Payload, byID[m.ID]) {
			t.Fatalf("message %d stored %s, Append returned %s", m.ID, m.Payload, byID[m.ID])
		}
	}
}

func testConcurrentAppendRead(t *testing.T, s store.Store) {
	const writers, each, maxSize, limit = 4, 200, 50, 20
	createRoom(t, s, "r")
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	done := make(chan struct{})
	var writersWG sync.WaitGroup
	for w := range writers {
		writersWG.Go(func() {
			for i := range each {
				if _, err := s.Append(c, "r", message(i), maxSize); err != nil {
					errs <- fmt.Errorf("writer %d: Append: %w", w, err)
					return
				}
			}
		})
	}
	contiguous := func(what string, msgs []store.Message) error {
		if len(msgs) > limit {
			return fmt.Errorf("%s returned %d messages, limit %d", what, len(msgs), limit)
		}
		for i := 1; i < len(msgs); i++ {
			if msgs[i].ID != msgs[i-1].ID+1 {
				return fmt.Errorf("%s returned ids %v", what, ids(msgs))
			}
		}
		return nil
	}
	for r := range writers {
		wg.Go(func() {
			var after uint64
			for {
				select {
				case <-done:
					return
				default:
				}
				info, err := s.HistoryInfo(c, "r")
				if err == nil && info.Size > 0 && (info.Size > maxSize || info.FirstID != info.LastID-uint64(info.Size)+1) {
					err = fmt.Errorf("HistoryInfo = %+v", info)
				}
				if err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				msgs, err := s.Range(c, "r", after, limit)
				if err == nil {
					err = contiguous("Range", msgs)
				}
				if err == nil && len(msgs) > 0 && msgs[0].ID <= after {
					err = fmt.Errorf("Range(%d) started at %d", after, msgs[0].ID)
				}
				if err == nil {
					if len(msgs) > 0 {
						after = msgs[len(msgs)-1].ID
					}
					msgs, err = s.Recent(c, "r", limit)
				}
				if err == nil {
					err = contiguous("Recent", msgs)
				}
				if err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
			}
		})
	}
	writersWG.Wait()
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkInfo(t, s, "r", writers*each, writers*each-maxSize+1, maxSize)
}

func checkCount(t *testing.T, what string, got store.UserCount, err error, want int) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got.N != want {
		t.Fatalf("%s = %d, want %d", what, got.N, want)
	}
}

func checkRemove(t *testing.T, s store.Store, clientID, session string, wantRemoved bool, wantLeft int) {
	t.Helper()
	removed, left, err := s.RemoveConnection(ctx(t), clientID, session)
	if err != nil {
		t.Fatalf("RemoveConnection(%q, %q): %v", clientID, session, err)
	}
	if removed != wantRemoved || left.N != wantLeft {
		t.Fatalf("RemoveConnection(%q, %q) = %v, %d; want %v, %d",
			clientID, session, removed, left.N, wantRemoved, wantLeft)
	}
}

func checkConnections(t *testing.T, s store.Store, user string, want ...store.Connection) {
	t.Helper()
	got, err := s.UserConnections(ctx(t), user)
	if err != nil {
		t.Fatalf("UserConnections(%q): %v", user, err)
	}
	if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
		t.Fatalf("UserConnections(%q) = %+v, want %+v", user, got, want)
	}
}

func conn(clientID, session, user string) store.Connection {
	return store.Connection{ClientID: clientID, Session: session, User: user, Instance: "i1", ConnectedAt: 1000}
}

func testConnections(t *testing.T, s store.Store) {
	checkConnections(t, s, "alice")
	a2, a1, b1 := conn("a2", "s1", "alice"), conn("a1", "s2", "alice"), conn("b1", "s3", "bob")
	a1.Instance, a1.ConnectedAt = "i2", 2000

	n, err := s.AddConnection(ctx(t), a2)
	checkCount(t, "AddConnection(a2)", n, err, 1)
	n, err = s.AddConnection(ctx(t), a1)
	checkCount(t, "AddConnection(a1)", n, err, 2)
	n, err = s.AddConnection(ctx(t), b1)
	checkCount(t, "AddConnection(b1)", n, err, 1)
	n, err = s.AddConnection(ctx(t), a1) // the same connection again is not counted twice
	checkCount(t, "AddConnection(a1) again", n, err, 2)

	checkConnections(t, s, "alice", a1, a2)
	checkConnections(t, s, "bob", b1)

	checkRemove(t, s, "a2", "s1", true, 1)
	checkRemove(t, s, "a2", "s1", false, 0)
	checkRemove(t, s, "nope", "s1", false, 0)
	checkConnections(t, s, "alice", a1)
	checkRemove(t, s, "a1", "s2", true, 0)
	checkConnections(t, s, "alice")
	checkConnections(t, s, "bob", b1)
}

func testConnectionTakeover(t *testing.T, s store.Store) {
	old, other := conn("c1", "s1", "alice"), conn("c2", "s2", "alice")
	for _, c := range []store.Connection{old, other} {
		if _, err := s.AddConnection(ctx(t), c); err != nil {
			t.Fatalf("AddConnection: %v", err)
		}
	}
	// A new session of c1 replaces the old one and is not counted twice.
	successor := conn("c1", "s9", "alice")
	successor.Instance = "i2"
	n, err := s.AddConnection(ctx(t), successor)
	checkCount(t, "AddConnection(takeover)", n, err, 2)
	checkConnections(t, s, "alice", successor, other)

	// Removing the old session must not remove its successor.
	checkRemove(t, s, "c1", "s1", false, 2)
	checkConnections(t, s, "alice", successor, other)

	// A takeover by another user moves the connection to that user.
	stolen := conn("c2", "s10", "bob")
	n, err = s.AddConnection(ctx(t), stolen)
	checkCount(t, "AddConnection(takeover by bob)", n, err, 1)
	checkConnections(t, s, "alice", successor)
	checkConnections(t, s, "bob", stolen)
	n, err = s.AddConnection(ctx(t), conn("c3", "s11", "alice"))
	checkCount(t, "AddConnection(c3)", n, err, 2)

	checkRemove(t, s, "c1", "s9", true, 1)
	checkRemove(t, s, "c2", "s10", true, 0)
	checkConnections(t, s, "bob")
}

type joinLeave func(ctx context.Context, room, user, clientID string, at int64) (int, bool, error)

func checkJoinLeave(t *testing.T, name string, f joinLeave, room, user, clientID string, at int64, wantCount int, wantChanged bool) {
	t.Helper()
	n, changed, err := f(ctx(t), room, user, clientID, at)
	if err != nil {
		t.Fatalf("%s(%q, %q, %q): %v", name, room, user, clientID, err)
	}
	if n != wantCount || changed != wantChanged {
		t.Fatalf("%s(%q, %q, %q) = %d, %v; want %d, %v", name, room, user, clientID, n, changed, wantCount, wantChanged)
	}
}

func checkSeen(t *testing.T, s store.Store, room, user string, wantJoined bool, wantAt int64) {
	t.Helper()
	joined, at, err := s.UserSeen(ctx(t), room, user)
	if err != nil {
		t.Fatalf("UserSeen(%q, %q): %v", room, user, err)
	}
	if joined != wantJoined || at != wantAt {
		t.Fatalf("UserSeen(%q, %q) = %v, %d; want %v, %d", room, user, joined, at, wantJoined, wantAt)
	}
}

func checkRoomUsers(t *testing.T, s store.Store, room string, want ...string) {
	t.Helper()
	users, err := s.RoomUsers(ctx(t), room)
	checkStrings(t, fmt.Sprintf("RoomUsers(%q)", room), users, err, want)
}

func checkClientRooms(t *testing.T, s store.Store, clientID string, want ...string) {
	t.Helper()
	rooms, err := s.ClientRooms(ctx(t), clientID)
	checkStrings(t, fmt.Sprintf("ClientRooms(%q)", clientID), rooms, err, want)
}

func testMembership(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	join, leave := s.Join, s.Leave
	checkRoomUsers(t, s, "r")
	checkSeen(t, s, "r", "alice", false, 0)

	checkJoinLeave(t, "Join", join, "r", "alice", "a1", 100, 1, true)
	checkJoinLeave(t, "Join", join, "r", "alice", "a1", 105, 1, false)
	checkSeen(t, s, "r", "alice", true, 100)
	checkJoinLeave(t, "Join", join, "r", "alice", "a2", 110, 2, true)
	checkJoinLeave(t, "Join", join, "r", "bob", "b1", 115, 1, true)
	checkRoomUsers(t, s, "r", "alice", "bob")
	checkSeen(t, s, "r", "alice", true, 110)
	checkSeen(t, s, "r", "bob", true, 115)

	checkJoinLeave(t, "Leave", leave, "r", "alice", "a1", 120, 1, true)
	checkJoinLeave(t, "Leave", leave, "r", "alice", "a1", 125, 1, false)
	checkSeen(t, s, "r", "alice", true, 120)
	checkRoomUsers(t, s, "r", "alice", "bob")
	checkJoinLeave(t, "Leave", leave, "r", "alice", "a2", 130, 0, true)
	checkSeen(t, s, "r", "alice", false, 130)
	checkRoomUsers(t, s, "r", "bob")

	// Leaving a room never joined changes nothing, not even the last-seen time.
	checkJoinLeave(t, "Leave", leave, "r", "carol", "c1", 140, 0, false)
	checkSeen(t, s, "r", "carol", false, 0)

	// Joining again after leaving counts from zero.
	checkJoinLeave(t, "Join", join, "r", "alice", "a2", 150, 1, true)
	checkSeen(t, s, "r", "alice", true, 150)
	checkRoomUsers(t, s, "r", "alice", "bob")
}

func testMembershipNoRoom(t *testing.T, s store.Store) {
	_, _, err := s.Join(ctx(t), "nope", "alice", "a1", 1)
	checkNoRoom(t, "Join", err)
	checkJoinLeave(t, "Leave", s.Leave, "nope", "alice", "a1", 1, 0, false)
	_, err = s.RoomUsers(ctx(t), "nope")
	checkNoRoom(t, "RoomUsers", err)
	_, _, err = s.UserSeen(ctx(t), "nope", "alice")
	checkNoRoom(t, "UserSeen", err)
	checkClientRooms(t, s, "a1")
}

// testMembershipTakenOverClient covers a client id that joined as one user and was then taken
// over by a connection of another user: membership is keyed by client id, and a late Leave on
// behalf of the old user must not remove the new user's membership.
func testMembershipTakenOverClient(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	checkJoinLeave(t, "Join", s.Join, "r", "alice", "c1", 10, 1, true)
	checkJoinLeave(t, "Join", s.Join, "r", "alice", "c2", 11, 2, true)
	checkJoinLeave(t, "Join", s.Join, "r", "bob", "c1", 20, 1, true)
	checkRoomUsers(t, s, "r", "alice", "bob")
	checkSeen(t, s, "r", "alice", true, 20)
	checkSeen(t, s, "r", "bob", true, 20)

	checkJoinLeave(t, "Leave", s.Leave, "r", "alice", "c1", 30, 1, false)
	checkSeen(t, s, "r", "bob", true, 20)
	checkJoinLeave(t, "Leave", s.Leave, "r", "alice", "c2", 31, 0, true)
	checkRoomUsers(t, s, "r", "bob")
	checkClientRooms(t, s, "c1", "r")
	checkJoinLeave(t, "Leave", s.Leave, "r", "bob", "c1", 32, 0, true)
	checkRoomUsers(t, s, "r")
	checkClientRooms(t, s, "c1")
}

func testClientRooms(t *testing.T, s store.Store) {
	for _, r := range []string{"r3", "r1", "r2"} {
		createRoom(t, s, r)
	}
	checkClientRooms(t, s, "a1")
	for _, r := range []string{"r3", "r1", "r2"} {
		checkJoinLeave(t, "Join", s.Join, r, "alice", "a1", 1, 1, true)
	}
	checkJoinLeave(t, "Join", s.Join, "r2", "alice", "a2", 1, 2, true)
	checkClientRooms(t, s, "a1", "r1", "r2", "r3")
	checkClientRooms(t, s, "a2", "r2")
	checkJoinLeave(t, "Leave", s.Leave, "r2", "alice", "a1", 2, 1, true)
	checkClientRooms(t, s, "a1", "r1", "r3")
	checkClientRooms(t, s, "a2", "r2")
}

func testDeleteRoomClearsMembership(t *testing.T, s store.Store) {
	createRoom(t, s, "r")
	createRoom(t, s, "keep")
	checkJoinLeave(t, "Join", s.Join, "r", "alice", "a1", 10, 1, true)
	checkJoinLeave(t, "Join", s.Join, "r", "alice", "a2", 11, 2, true)
	checkJoinLeave(t, "Join", s.Join, "keep", "alice", "a1", 12, 1, true)
	checkClientRooms(t, s, "a1", "keep", "r")

	if err := s.DeleteRoom(ctx(t), "r"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	checkClientRooms(t, s, "a1", "keep")
	checkClientRooms(t, s, "a2")
	checkRoomUsers(t, s, "keep", "alice")
	checkSeen(t, s, "keep", "alice", true, 12)

	createRoom(t, s, "r")
	checkRoomUsers(t, s, "r")
	checkSeen(t, s, "r", "alice", false, 0)
	checkJoinLeave(t, "Join", s.Join, "r", "alice", "a2", 20, 1, true)
	checkClientRooms(t, s, "a1", "keep")
	checkClientRooms(t, s, "a2", "r")
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
