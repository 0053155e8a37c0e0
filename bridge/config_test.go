package bridge

import (
	"errors"
	"strings"
	"testing"
)

func TestUnenrich(t *testing.T) {
	for _, tc := range []struct {
		name, payload, want string
		id                  uint64
		author, ts          string
	}{
		{"text", `{"id":7,"author":"bob","timestamp":123,"textMessage":"hi"}`, `{"textMessage":"hi"}`, 7, "bob", "123"},
		{"empty object", `{"id":7,"author":"bob","timestamp":123}`, `{}`, 7, "bob", "123"},
		{"escaped author", `{"id":1,"author":"a\"b","timestamp":1,"x":[1]}`, `{"x":[1]}`, 1, `a"b`, "1"},
		{"other id: binary bytes", `{"id":8,"author":"bob","timestamp":123,"x":1}`, `{"id":8,"author":"bob","timestamp":123,"x":1}`, 7, "bob", "123"},
		{"binary", "\x00\x01", "\x00\x01", 1, "a", "1"},
		{"prefix only", `{"id":1,"author":"a","timestamp":12`, `{"id":1,"author":"a","timestamp":12`, 1, "a", "1"},
	} {
		if got := string(unenrich([]byte(tc.payload), tc.id, tc.author, tc.ts)); got != tc.want {
			t.Errorf("%s: unenrich = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestRewrite(t *testing.T) {
	for _, tc := range []struct {
		topic, from, to, want string
		ok                    bool
	}{
		{"sensors", "sensors", "s1/sensors", "s1/sensors", true},
		{"sensors/a/b", "sensors", "s1/sensors", "s1/sensors/a/b", true},
		{"sensorsx/a", "sensors", "s1", "", false},
		{"other/a", "sensors", "s1", "", false},
		{"a/b/c", "a/b", "x", "x/c", true},
	} {
		got, ok := rewrite(tc.topic, tc.from, tc.to)
		if got != tc.want || ok != tc.ok {
			t.Errorf("rewrite(%q, %q, %q) = %q, %v; want %q, %v", tc.topic, tc.from, tc.to, got, ok, tc.want, tc.ok)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	good := func() Config {
		return Config{Name: "cloud", LocalName: "edge", URL: "wss://h/mqtt", Rooms: []RoomMapping{{Local: "a", Remote: "b", Direction: Both}}}
	}
	c := good()
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "bridge-edge" || c.LocalUser != "bridge-cloud" || c.QueueSize != DefaultQueueSize || c.ReconnectMax != DefaultReconnectMax {
		t.Errorf("defaults not filled in: %+v", c)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "name"},
		{"same names", func(c *Config) { c.LocalName = "cloud" }, "both"},
		{"scheme", func(c *Config) { c.URL = "http://h" }, "scheme"},
		{"no host", func(c *Config) { c.URL = "tcp://" }, "host"},
		{"direction", func(c *Config) { c.Rooms[0].Direction = "up" }, "direction"},
		{"room twice", func(c *Config) { c.Rooms = append(c.Rooms, RoomMapping{Local: "a", Remote: "c", Direction: In}) }, "twice"},
		{"wildcard prefix", func(c *Config) { c.Topics = []TopicMapping{{Local: "a/#", Remote: "b", Direction: Out}} }, "wildcards"},
		{"reserved", func(c *Config) { c.Topics = []TopicMapping{{Local: "rooms", Remote: "b", Direction: Out}} }, "reserved"},
		{"reserved below", func(c *Config) { c.Topics = []TopicMapping{{Local: "users/bob", Remote: "b", Direction: Out}} }, "reserved"},
		{"qos 2", func(c *Config) { c.Topics = []TopicMapping{{Local: "a", Remote: "b", Direction: Out, QoS: 2}} }, "qos"},
		{"nothing", func(c *Config) { c.Rooms = nil }, "no topics and no rooms"},
	} {
		c := good()
		tc.edit(&c)
		err := c.Check()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrConfig mentioning %q", tc.name, err, tc.want)
		}
	}
}
