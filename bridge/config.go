package bridge

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/roomq/roomq/wire"
)

// Direction says which way a mapping carries messages.
type Direction string

// Directions of a mapping.
const (
	// Out carries messages from this broker to the far side.
	Out Direction = "out"
	// In carries messages from the far side to this broker.
	In Direction = "in"
	// Both carries messages both ways.
	Both Direction = "both"
)

// out reports whether d carries messages to the far side.
func (d Direction) out() bool { return d == Out || d == Both }

// in reports whether d carries messages from the far side.
func (d Direction) in() bool { return d == In || d == Both }

// Defaults of Config.
const (
	DefaultKeepAlive    = 30 * time.Second
	DefaultReconnectMin = 100 * time.Millisecond
	DefaultReconnectMax = 30 * time.Second
	DefaultQueueSize    = 1000
	DefaultPoll         = time.Second
)

// TopicMapping bridges the plain topics under one prefix: Local and every topic below it
// (Local/#) on this broker, Remote and below on the far side, with the prefix rewritten.
type TopicMapping struct {
	// Local is the topic prefix on this broker, without wildcards, e.g. "sensors".
	Local string
	// Remote is the matching prefix on the far side, e.g. "site1/sensors".
	Remote string
	// Direction is Out, In or Both.
	Direction Direction
	// QoS is the QoS of the subscriptions and publishes, 0 or 1.
	QoS byte
}

// RoomMapping bridges one room with a room of a roomq broker on the far side.
type RoomMapping struct {
	// Local is the room on this broker.
	Local string
	// Remote is the room on the far side; it must exist there.
	Remote string
	// Direction is Out, In or Both.
	Direction Direction
}

// Config configures one bridge.
type Config struct {
	// Name is the far side's name: messages bridged in from it carry it as origin-broker,
	// and messages that came from it are never sent back. A valid room name. Required.
	Name string
	// LocalName is this broker's name on the link: the origin-broker of messages that leave
	// it. Messages that the far side shows with this origin are not brought back. Required.
	LocalName string
	// URL is the far side: tcp://, ws://, tls:// or wss:// host:port (ws and wss with the
	// path, usually /mqtt). Required.
	URL string
	// User and Password are the credentials at the far side.
	User     string
	Password []byte
	// ClientID is the client id at the far side, empty meaning "bridge-" + LocalName. Each
	// connection for plain topics adds "-N", and each connection for rooms "-rooms-N" (N
	// counting the connections, so that a new one never takes over the last).
	ClientID string
	// TLS configures tls:// and wss://; nil means the system roots.
	TLS *tls.Config
	// LocalUser is the user that bridged-in room messages are posted as here (it needs the
	// right to post to the local rooms); empty means "bridge-" + Name.
	LocalUser string
	// Topics are the plain topic mappings; they need Options.Local.
	Topics []TopicMapping
	// Rooms are the room mappings; the far side must be a roomq broker.
	Rooms []RoomMapping
	// KeepAlive is the MQTT keepalive of the bridge's connections (default 30 s).
	KeepAlive time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between connection attempts (defaults
	// 100 ms and 30 s).
	ReconnectMin, ReconnectMax time.Duration
	// QueueSize bounds the plain messages waiting for the far side (default 1000).
	QueueSize int
}

// check validates c and fills in its defaults.
func (c *Config) check() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !wire.ValidName(c.Name) {
		add("name %q: not a valid name", c.Name)
	}
	if !wire.ValidName(c.LocalName) {
		add("local_name %q: not a valid name", c.LocalName)
	}
	if c.Name == c.LocalName {
		add("name and local_name are both %q", c.Name)
	}
	if u, err := url.Parse(c.URL); err != nil || u.Host == "" {
		add("url %q: not a URL with a host", c.URL)
	} else if !validScheme(u.Scheme) {
		add("url %q: scheme must be tcp, ws, tls or wss", c.URL)
	}
	if c.ClientID == "" {
		c.ClientID = "bridge-" + c.LocalName
	}
	if c.LocalUser == "" {
		c.LocalUser = "bridge-" + c.Name
	}
	if !wire.ValidName(c.LocalUser) {
		add("local_user %q: not a valid user name", c.LocalUser)
	}
	for i, t := range c.Topics {
		if !validPrefix(t.Local) || !validPrefix(t.Remote) {
			add("topics[%d]: local %q and remote %q must be topics without wildcards", i, t.Local, t.Remote)
		} else if reserved(t.Local) {
			add("topics[%d]: local %q is in a reserved namespace (rooms/, users/, presence/, $rpc/): map rooms with rooms", i, t.Local)
		}
		if !t.Direction.in() && !t.Direction.out() {
			add("topics[%d].direction %q: want out, in or both", i, t.Direction)
		}
		if t.QoS > 1 {
			add("topics[%d].qos %d: want 0 or 1", i, t.QoS)
		}
	}
	seen := map[string]bool{}
	for i, r := range c.Rooms {
		if !wire.ValidName(r.Local) || !wire.ValidName(r.Remote) {
			add("rooms[%d]: local %q and remote %q must be room names", i, r.Local, r.Remote)
		}
		if !r.Direction.in() && !r.Direction.out() {
			add("rooms[%d].direction %q: want out, in or both", i, r.Direction)
		}
		if seen["l"+r.Local] || seen["r"+r.Remote] {
			add("rooms[%d]: room %q or %q mapped twice", i, r.Local, r.Remote)
		}
		seen["l"+r.Local], seen["r"+r.Remote] = true, true
	}
	if len(c.Topics) == 0 && len(c.Rooms) == 0 {
		add("no topics and no rooms to bridge")
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = DefaultReconnectMax
	}
	c.ReconnectMax = max(c.ReconnectMax, c.ReconnectMin)
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: bridge %q: %s", ErrConfig, c.Name, strings.Join(problems, "; "))
	}
	return nil
}

// Check validates c as New would, filling in its defaults.
func (c *Config) Check() error { return c.check() }

func validScheme(s string) bool {
	switch strings.ToLower(s) {
	case "tcp", "mqtt", "tls", "ssl", "mqtts", "ws", "wss":
		return true
	}
	return false
}

// validPrefix reports whether p is a topic that may stand before /#.
func validPrefix(p string) bool {
	return p != "" && !strings.ContainsAny(p, "+#") && !strings.HasPrefix(p, "$") && !strings.HasSuffix(p, "/")
}

// reserved reports whether topics under prefix p belong to roomq's reserved namespaces.
func reserved(p string) bool {
	for _, ns := range []string{wire.RoomsPrefix, wire.UsersPrefix, wire.PresencePrefix} {
		if p+"/" == ns || strings.HasPrefix(p, ns) {
			return true
		}
	}
	return false
}

// rewrite maps topic from under prefix from to under prefix to; ok is false when topic is
// not under from.
func rewrite(topic, from, to string) (string, bool) {
	if topic == from {
		return to, true
	}
	if strings.HasPrefix(topic, from+"/") {
		return to + topic[len(from):], true
	}
	return "", false
}
