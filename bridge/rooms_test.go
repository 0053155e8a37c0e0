package bridge_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/roomq/roomq/bridge"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/netproxy"
	"github.com/roomq/roomq/internal/tlstest"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// TestRoomBothWaysAcrossCuts bridges a room of two brokers both ways through a link that is
// cut, and refused for a while, while both sides post: each side ends up with every message
// of the other once, in order, with its origin, and nothing comes back.
func TestRoomBothWaysAcrossCuts(t *testing.T) {
	cloud := mqtttest.StartBroker(t, nil)
	edgeStore := store.NewMemory()
	edge := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = edgeStore })
	px := netproxy.New(t, cloud.MQTTAddr())
	b := runBridge(t, bridge.Options{
		Config: bridge.Config{
			Name: "cloud", LocalName: "edge", URL: px.URL(), User: "edge-gw",
			Rooms:        []bridge.RoomMapping{{Local: "general", Remote: "general", Direction: bridge.Both}},
			ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
		},
		Rooms: edge.Rooms(), Poster: edge.Commands(), Feed: edgeStore, Poll: 50 * time.Millisecond,
	})
	waitJoined(t, b)

	watcher := mqtttest.Dial(t, "watcher", mqtttest.Options{URL: "tcp://" + cloud.MQTTAddr()})
	watcher.MustSubscribe("rooms/general")

	// Each outage starts while messages flow; posting goes on while the link is down, and the
	// next outage starts only once the bridge is connected again (so that there are three).
	const n = 60
	var conns uint64
	reconnected := func() {
		mqtttest.WaitFor(t, waitTimeout, "bridge reconnected", func() bool {
			s := b.Status()
			return s.Connected && s.Connections > conns
		})
	}
	for i := 1; i <= n; i++ {
		post(t, edge, "alice", "general", fmt.Sprintf("alice %d", i))
		post(t, cloud, "bob", "general", fmt.Sprintf("bob %d", i))
		switch i {
		case 10, 50:
			conns = b.Status().Connections
			px.Cut()
		case 20:
			reconnected()
		case 30:
			conns = b.Status().Connections
			px.Pause()
		case 40:
			px.Resume()
		case 45:
			reconnected()
		}
	}
	// Markers posted last: once both crossed, everything before them has.
	post(t, edge, "alice", "general", "alice end")
	post(t, cloud, "bob", "general", "bob end")
	want := uint64(2*n + 2)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("status %+v", b.Status())
		}
	})
	mqtttest.WaitFor(t, waitTimeout, "both rooms complete", func() bool {
		return lastID(t, edge, "general") >= want && lastID(t, cloud, "general") >= want
	})

	checkSide(t, "edge", history(t, edge, "general"), "alice", "bob", "bridge-cloud", "cloud", n)
	checkSide(t, "cloud", history(t, cloud, "general"), "bob", "alice", "edge-gw", "edge", n)

	// The far side's subscribers see the origin as user properties.
	for {
		p := watcher.Expect("rooms/general")
		if mqtttest.UserProperty(p, "author") != "edge-gw" {
			continue
		}
		if ob, oid := mqtttest.UserProperty(p, wire.PropOriginBroker), mqtttest.UserProperty(p, wire.PropOriginID); ob != "edge" || oid == "" {
			t.Fatalf("bridged delivery has origin-broker %q, origin-id %q", ob, oid)
		}
		break
	}

	mqtttest.WaitFor(t, waitTimeout, "bridge positions at the ends", func() bool {
		r := b.Status().Rooms[0]
		return r.LastOut == want && r.LastIn == want
	})
	s := b.Status()
	if s.MessagesIn != n+1 || s.MessagesOut != n+1 || s.Dropped != 0 || s.Connections < 4 {
		t.Errorf("status = %+v, want %d in, %d out, none dropped, at least 4 connections", s, n+1, n+1)
	}
	if lastID(t, edge, "general") != want || lastID(t, cloud, "general") != want {
		t.Errorf("rooms have %d and %d messages, want %d each", lastID(t, edge, "general"), lastID(t, cloud, "general"), want)
	}
}

// checkSide checks the history of one side: its own messages from own, and those of the
// other side, from other, posted by bridgeUser with origin (originBroker, their id there),
// each once and in order.
func checkSide(t *testing.T, side string, msgs []*rooms.Message, own, other, bridgeUser, originBroker string, n int) {
	t.Helper()
	var mine, theirs []string
	var lastOrigin uint64
	for _, m := range msgs {
		var body struct {
			TextMessage string `json:"textMessage"`
		}
		if err := json.Unmarshal(m.Message.Payload, &body); err != nil {
			t.Fatalf("%s: message %d: %v", side, m.ID, err)
		}
		switch m.Author {
		case own:
			if m.OriginBroker != "" {
				t.Errorf("%s: own message %d has origin %q", side, m.ID, m.OriginBroker)
			}
			mine = append(mine, body.TextMessage)
		case bridgeUser:
			if m.OriginBroker != originBroker || m.OriginID <= lastOrigin {
				t.Errorf("%s: bridged message %d has origin %q %d after %d", side, m.ID, m.OriginBroker, m.OriginID, lastOrigin)
			}
			lastOrigin = m.OriginID
			theirs = append(theirs, body.TextMessage)
		default:
			t.Errorf("%s: message %d by %q", side, m.ID, m.Author)
		}
	}
	check := func(what string, got []string, user string) {
		if len(got) != n+1 {
			t.Errorf("%s: %d %s messages, want %d: %v", side, len(got), what, n+1, got)
			return
		}
		for i, text := range got {
			want := user + " " + strconv.Itoa(i+1)
			if i == n {
				want = user + " end"
			}
			if text != want {
				t.Errorf("%s: %s message %d is %q, want %q", side, what, i, text, want)
				return
			}
		}
	}
	check("own", mine, own)
	check("bridged", theirs, other)
}

// TestRoomTwoBridges links two brokers with a bridge on each side, both carrying the room
// both ways: every message arrives once on the other side, by whichever bridge came first,
// and nothing loops.
func TestRoomTwoBridges(t *testing.T) {
	cloudStore, edgeStore := store.NewMemory(), store.NewMemory()
	cloud := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = cloudStore })
	edge := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = edgeStore })
	room := []bridge.RoomMapping{{Local: "general", Remote: "general", Direction: bridge.Both}}
	up := runBridge(t, bridge.Options{
		Config: bridge.Config{Name: "cloud", LocalName: "edge", URL: "tcp://" + cloud.MQTTAddr(), User: "edge-gw", Rooms: room},
		Rooms:  edge.Rooms(), Poster: edge.Commands(), Feed: edgeStore,
	})
	down := runBridge(t, bridge.Options{
		Config: bridge.Config{Name: "edge", LocalName: "cloud", URL: "tcp://" + edge.MQTTAddr(), User: "cloud-gw", Rooms: room},
		Rooms:  cloud.Rooms(), Poster: cloud.Commands(), Feed: cloudStore,
	})
	waitJoined(t, up)
	waitJoined(t, down)
	const n = 20
	for i := 1; i <= n; i++ {
		post(t, edge, "alice", "general", fmt.Sprintf("alice %d", i))
		post(t, cloud, "bob", "general", fmt.Sprintf("bob %d", i))
	}
	post(t, edge, "alice", "general", "alice end")
	post(t, cloud, "bob", "general", "bob end")
	want := uint64(2*n + 2)
	mqtttest.WaitFor(t, waitTimeout, "both rooms complete", func() bool {
		return lastID(t, edge, "general") >= want && lastID(t, cloud, "general") >= want
	})
	// Both bridges have handled everything: a copy that loops would have been posted by now.
	for _, b := range []*bridge.Bridge{up, down} {
		mqtttest.WaitFor(t, waitTimeout, "bridge "+b.Name()+" at the ends", func() bool {
			r := b.Status().Rooms[0]
			return r.LastOut == want && r.LastIn == want
		})
	}
	for side, br := range map[string]*broker.Broker{"edge": edge, "cloud": cloud} {
		msgs := history(t, br, "general")
		if len(msgs) != int(want) {
			t.Errorf("%s: %d messages, want %d", side, len(msgs), want)
		}
		seen := map[string]int{}
		for _, m := range msgs {
			var body struct {
				TextMessage string `json:"textMessage"`
			}
			_ = json.Unmarshal(m.Message.Payload, &body)
			seen[body.TextMessage]++
		}
		for _, who := range []string{"alice", "bob"} {
			for i := 1; i <= n+1; i++ {
				text := who + " " + strconv.Itoa(i)
				if i == n+1 {
					text = who + " end"
				}
				if seen[text] != 1 {
					t.Errorf("%s: %q stored %d times", side, text, seen[text])
				}
			}
		}
	}
}

// TestRoomTransports bridges a room out over each transport: ws://host/mqtt, tls:// and
// wss:// (with a private CA).
func TestRoomTransports(t *testing.T) {
	cert := tlstest.New(t)
	cloud := mqtttest.StartBroker(t, func(o *broker.Options) {
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
		o.MQTTTLSAddr = "127.0.0.1:0"
	})
	cloudWSS := mqtttest.StartBroker(t, func(o *broker.Options) {
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
		o.HTTPTLS = true
	})
	for _, tc := range []struct {
		name  string
		cloud *broker.Broker
		url   string
	}{
		{"ws", cloud, "ws://" + cloud.HTTPAddr() + "/mqtt"},
		{"tls", cloud, "tls://" + cloud.MQTTTLSAddr()},
		{"wss", cloudWSS, "wss://" + cloudWSS.HTTPAddr() + "/mqtt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edgeStore := store.NewMemory()
			edge := mqtttest.StartBroker(t, func(o *broker.Options) { o.Store = edgeStore })
			b := runBridge(t, bridge.Options{
				Config: bridge.Config{
					Name: "cloud", LocalName: "edge-" + tc.name, URL: tc.url, User: "edge-gw",
					TLS:   &tls.Config{RootCAs: cert.Pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
					Rooms: []bridge.RoomMapping{{Local: "general", Remote: "general", Direction: bridge.Out}},
				},
				Rooms: edge.Rooms(), Poster: edge.Commands(), Feed: edgeStore,
			})
			waitJoined(t, b)
			before := lastID(t, tc.cloud, "general")
			post(t, edge, "alice", "general", "over "+tc.name)
			mqtttest.WaitFor(t, waitTimeout, "message in the cloud", func() bool { return lastID(t, tc.cloud, "general") == before+1 })
			if m := history(t, tc.cloud, "general")[before]; m.OriginBroker != "edge-"+tc.name || m.OriginID != 1 || m.Author != "edge-gw" {
				t.Fatalf("cloud stored %+v", m.Message)
			}
		})
	}
}
