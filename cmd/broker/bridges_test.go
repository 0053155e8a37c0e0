package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/bridge"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/client"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/store"
)

const (
	bridgeCloudFile = "../../config.bridge-cloud.yaml"
	bridgeEdgeFile  = "../../config.bridge-edge.yaml"
)

// TestBridgeConfig checks that a bridge entry maps onto bridge.Config, with its defaults.
func TestBridgeConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "c.yaml")
	data := `instance_id: edge
bridges:
  - name: cloud
    url: wss://cloud.example.com/mqtt
    user: u
    password_file: ` + pw + `
    rooms: [{local: general, remote: g2, direction: both}]
    topics: [{local: a/b, remote: x, direction: in, qos: 1}]
`
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig([]string{"--config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ps problems
	setups := cfg.bridges(&ps)
	if len(ps) > 0 || len(setups) != 1 {
		t.Fatalf("problems %v, %d bridges", ps, len(setups))
	}
	c := setups[0].cfg
	check(t, "LocalName", c.LocalName, "edge")
	check(t, "Password", string(c.Password), "s3cret")
	check(t, "ClientID", c.ClientID, "bridge-edge")
	check(t, "LocalUser", c.LocalUser, "bridge-cloud")
	check(t, "Rooms", c.Rooms, []bridge.RoomMapping{{Local: "general", Remote: "g2", Direction: bridge.Both}})
	check(t, "Topics", c.Topics, []bridge.TopicMapping{{Local: "a/b", Remote: "x", Direction: bridge.In, QoS: 1}})
}

// TestBridgeConfigProblems checks that bad bridge entries are refused, naming the key.
func TestBridgeConfigProblems(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"unknown key", "bridges: [{name: c, local_name: e, url: tcp://h:1, rooms: [{local: a, remote: a, direction: both}], usr: x}]", "usr"},
		{"no local name", "bridges: [{name: c, url: tcp://h:1, rooms: [{local: a, remote: a, direction: both}]}]", "bridges[0].local_name"},
		{"bad direction", "bridges: [{name: c, local_name: e, url: tcp://h:1, rooms: [{local: a, remote: a, direction: up}]}]", "direction"},
		{"bad scheme", "bridges: [{name: c, local_name: e, url: http://h:1, rooms: [{local: a, remote: a, direction: in}]}]", "scheme"},
		{"nothing mapped", "bridges: [{name: c, local_name: e, url: tcp://h:1}]", "no topics and no rooms"},
		{"two passwords", "bridges: [{name: c, local_name: e, url: tcp://h:1, password: a, password_file: /x, rooms: [{local: a, remote: a, direction: in}]}]", "password_file"},
		{"qos 2", "bridges: [{name: c, local_name: e, url: tcp://h:1, topics: [{local: a, remote: b, direction: in, qos: 2}]}]", "qos"},
		{"same names", "bridges: [{name: e, local_name: e, url: tcp://h:1, rooms: [{local: a, remote: a, direction: in}]}]", "both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(file, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig([]string{"--config", file}, nil)
			if err == nil {
				_, err = cfg.brokerOptions(discard)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// startFromFile starts a broker from a configuration file on loopback ports, with its
// bridges, until the test ends; edit changes the configuration first.
func startFromFile(t *testing.T, file string, edit func(*config)) (*broker.Broker, []*bridge.Bridge) {
	t.Helper()
	cfg, err := loadConfig([]string{"--config", file}, []string{"ROOMQ_MQTT__ADDR=127.0.0.1:0", "ROOMQ_HTTP__ADDR=127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&cfg)
	}
	o, err := cfg.brokerOptions(mqtttest.TestLogger())
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	o.Store = st
	b, err := broker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var ps problems
	bridges, stop, err := startBridges(cfg.bridges(&ps), b, st, o.Logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return b, bridges
}

// TestBridgeExampleFiles runs the two brokers of README "Edge gateway to cloud" from their
// files: a room message and a sensor reading of the edge reach the cloud, and a room message
// of the cloud reaches the edge.
func TestBridgeExampleFiles(t *testing.T) {
	cloud, _ := startFromFile(t, bridgeCloudFile, nil)
	edge, bridges := startFromFile(t, bridgeEdgeFile, func(c *config) {
		c.Bridges[0].URL = "tcp://" + cloud.MQTTAddr()
		c.AdminAPI.Token = edgeAdminToken
	})
	if len(bridges) != 1 {
		t.Fatalf("%d bridges, want 1", len(bridges))
	}
	mqtttest.WaitFor(t, 20*time.Second, "bridge ready", func() bool {
		s := bridges[0].Status()
		for _, r := range s.Rooms {
			if !r.Joined {
				return false
			}
		}
		return s.TopicsReady
	})

	cloudSub := mqtttest.Dial(t, "ops", mqtttest.Options{URL: "tcp://" + cloud.MQTTAddr()})
	cloudSub.MustSubscribe("site1/sensors/#", "rooms/site1-plant")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	post := func(b *broker.Broker, user, room string, payload []byte) {
		t.Helper()
		if _, err := b.Commands().PostRoom(ctx, commands.Caller{Identity: acl.Identity{User: user}}, room, payload); err != nil {
			t.Fatal(err)
		}
	}
	edgePub := mqtttest.Dial(t, "dev1", mqtttest.Options{URL: "tcp://" + edge.MQTTAddr()})
	edgePub.Publish("sensors/t1", 1, []byte("21.5"), nil)
	if p := cloudSub.Expect("site1/sensors/#"); p.Topic != "site1/sensors/t1" || string(p.Payload) != "21.5" {
		t.Fatalf("cloud got %s %q", p.Topic, p.Payload)
	}
	post(edge, "dev1", "plant", []byte(`{"temp":21.5}`))
	if p := cloudSub.Expect("rooms/site1-plant"); !strings.Contains(string(p.Payload), `"temp":21.5`) || mqtttest.UserProperty(p, "origin-broker") != "edge1" {
		t.Fatalf("cloud got %s with origin %q", p.Payload, mqtttest.UserProperty(p, "origin-broker"))
	}
	post(cloud, "ops", "general", client.TextMessage("hello edge"))
	mqtttest.WaitFor(t, 20*time.Second, "cloud message on the edge", func() bool {
		msgs, err := edge.Rooms().History(ctx, "general", 0, 0)
		return err == nil && len(msgs) == 1 && msgs[0].OriginBroker == "cloud" && strings.Contains(string(msgs[0].JSON()), "hello edge")
	})

	// The link's state in /metrics and in the admin API.
	metrics := httpGet(t, "http://"+edge.HTTPAddr()+"/metrics", "")
	for _, want := range []string{`roomq_bridge_connected{bridge="cloud"} 1`, `roomq_bridge_messages_total{bridge="cloud",direction="out"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var state struct {
		Bridges []bridge.Status `json:"bridges"`
	}
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+edge.HTTPAddr()+"/api/bridges", edgeAdminToken)), &state); err != nil {
		t.Fatal(err)
	}
	if len(state.Bridges) != 1 || !state.Bridges[0].Connected || state.Bridges[0].MessagesOut < 2 {
		t.Errorf("GET /api/bridges = %+v", state)
	}
}

// edgeAdminToken is the admin API token the tests give the edge broker.
const edgeAdminToken = "edge-admin-token-for-tests"

// httpGet returns the body of a GET of url, with a bearer token when one is given.
func httpGet(t *testing.T, url, token string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s %v", url, resp.StatusCode, body, err)
	}
	return string(body)
}
