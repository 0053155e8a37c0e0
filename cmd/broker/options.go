package main

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

// maxMQTTPacketSize is the largest packet MQTT can encode: a 1-byte header, a 4-byte remaining
// length and 268,435,455 bytes.
const maxMQTTPacketSize = 1 + 4 + 268_435_455

// maxWriteDelay bounds mqtt.write_delay: beyond it the delay would be felt as lag.
const maxWriteDelay = 100 * time.Millisecond

// builtinCheckers are the checkers a room in rooms.defaults may name.
var builtinCheckers = []string{rooms.CheckerText, rooms.CheckerJSON, rooms.CheckerBinary}

// brokerOptions checks every value of c and maps c onto broker.Options, with logger as the
// broker's logger. The error names each offending key.
func (c config) brokerOptions(logger *slog.Logger) (broker.Options, error) {
	var ps problems
	checkAddr(&ps, "mqtt.addr", c.MQTT.Addr)
	checkAddr(&ps, "mqtt.tls_addr", c.MQTT.TLSAddr)
	checkAddr(&ps, "http.addr", c.HTTP.Addr)
	if c.MQTT.Addr == "" && c.MQTT.TLSAddr == "" && c.HTTP.Addr == "" {
		ps.addf("mqtt.addr, mqtt.tls_addr, http.addr", "all are empty, so the broker would not listen at all")
	}
	tlsConf := c.tlsConfig(&ps)
	for i, o := range c.HTTP.AllowedOrigins {
		if !validOrigin(o) {
			ps.addf(fmt.Sprintf("http.allowed_origins[%d]", i), "%q is neither \"*\" nor scheme://host[:port]", o)
		}
	}
	if c.InstanceID != "" && !wire.ValidName(c.InstanceID) {
		ps.addf("instance_id", "%q is not a valid name (1-128 characters, no / + # : { }, control characters or leading $)", c.InstanceID)
	}
	if _, err := parseLogLevel(c.Log.Level); err != nil {
		ps.addf("log.level", "%v", err)
	}
	if _, err := parseLogFormat(c.Log.Format); err != nil {
		ps.addf("log.format", "%v", err)
	}

	c.Store.check(&ps)
	authn := c.Auth.authenticator(&ps)
	if len(c.Auth.Admins) == 0 {
		ps.addf("auth.admins", "must name at least one user")
	}
	for i, a := range c.Auth.Admins {
		checkName(&ps, fmt.Sprintf("auth.admins[%d]", i), "user", a)
	}
	topicRules := c.ACL.topicRules(&ps)
	c.bridges(&ps)

	var roomList []store.Room
	seen := map[string]bool{}
	for i, r := range c.Rooms.Defaults {
		key := fmt.Sprintf("rooms.defaults[%d]", i)
		room := store.Room{
			Name:              r.Name,
			Owner:             r.Owner,
			Checker:           r.Checker,
			WhitelistOnly:     r.WhitelistOnly,
			MaxMessageSize:    r.MaxMessageSize, // 0: the broker applies limits.max_room_message_size
			NotifyUserlist:    c.Rooms.NotifyUserlist,
			NotifyAccessLists: c.Rooms.NotifyAccessLists,
		}
		if room.Owner == "" && len(c.Auth.Admins) > 0 {
			room.Owner = c.Auth.Admins[0]
		}
		if room.Checker == "" {
			room.Checker = rooms.CheckerText
		}
		checkName(&ps, key+".name", "room", room.Name)
		if seen[room.Name] {
			ps.addf(key+".name", "room %q is listed twice", room.Name)
		}
		seen[room.Name] = true
		checkName(&ps, key+".owner", "user", room.Owner)
		if !slices.Contains(builtinCheckers, room.Checker) {
			ps.addf(key+".checker", "unknown checker %q (want %s)", room.Checker, strings.Join(builtinCheckers, ", "))
		}
		checkNotNegative(&ps, key+".max_message_size", r.MaxMessageSize, "means limits.max_room_message_size")
		roomList = append(roomList, room)
	}

	checkPositive(&ps, "history.max_size", c.History.MaxSize)
	checkPositive(&ps, "history.max_get_messages", c.History.MaxGetMessages)
	checkPositive(&ps, "limits.max_packet_size", c.Limits.MaxPacketSize)
	if c.Limits.MaxPacketSize > maxMQTTPacketSize {
		ps.addf("limits.max_packet_size", "must be at most %d, the largest MQTT packet, got %d", maxMQTTPacketSize, c.Limits.MaxPacketSize)
	}
	checkPositive(&ps, "limits.max_queued", c.Limits.MaxQueued)
	checkPositive(&ps, "limits.max_pending_writes", c.Limits.MaxPendingWrites)
	c.Limits.check(&ps)
	if c.ShutdownGrace <= 0 {
		ps.addf("shutdown_grace", "must be positive, got %s", c.ShutdownGrace)
	}
	if c.Limits.ReplyTimeout <= 0 {
		ps.addf("limits.reply_timeout", "must be positive, got %s", c.Limits.ReplyTimeout)
	}
	if c.MQTT.WriteDelay < 0 || c.MQTT.WriteDelay > maxWriteDelay {
		ps.addf("mqtt.write_delay", "must be between 0 and %s, got %s", maxWriteDelay, c.MQTT.WriteDelay)
	}
	if c.FailureTimeout <= 0 {
		ps.addf("failure_timeout", "must be positive, got %s", c.FailureTimeout)
	}
	adminToken := c.AdminAPI.token(&ps)
	if err := ps.err("invalid configuration"); err != nil {
		return broker.Options{}, err
	}

	opts := broker.DefaultOptions()
	opts.MQTTAddr = c.MQTT.Addr
	opts.HTTPAddr = c.HTTP.Addr
	opts.MQTTTLSAddr = c.MQTT.TLSAddr
	opts.WriteDelay = c.MQTT.WriteDelay
	opts.HTTPTLS = c.HTTP.TLS
	opts.TLS = tlsConf
	opts.AllowedOrigins = slices.Clone(c.HTTP.AllowedOrigins)
	opts.InstanceID = c.InstanceID
	opts.FailureTimeout = c.FailureTimeout
	opts.Admins = slices.Clone(c.Auth.Admins)
	opts.Authenticator = authn
	opts.TopicRules = topicRules
	opts.Rooms = roomList
	opts.NoDefaultRooms = len(roomList) == 0
	opts.RoomsManagement = c.Rooms.Management
	opts.NotifyUserlist = c.Rooms.NotifyUserlist
	opts.NotifyAccessLists = c.Rooms.NotifyAccessLists
	opts.HistoryMaxSize = c.History.MaxSize
	opts.HistoryMaxGetMessages = c.History.MaxGetMessages
	opts.MaxPacketSize = uint32(c.Limits.MaxPacketSize) // checked: 1..maxMQTTPacketSize
	opts.MaxQueued = c.Limits.MaxQueued
	opts.MaxPendingWrites = c.Limits.MaxPendingWrites
	opts.ListLimit = c.Limits.ListLimit
	opts.MaxRoomsPerUser = c.Limits.MaxRoomsPerUser
	opts.MaxRoomMessageSize = c.Limits.MaxRoomMessageSize
	opts.PublishRate = c.Limits.PublishRate
	opts.PublishBurst = c.Limits.PublishBurst
	opts.MaxConnectionsPerUser = c.Limits.MaxConnectionsPerUser
	opts.MaxSubscriptionsPerConnection = c.Limits.MaxSubscriptionsPerConnection
	opts.ReplyTimeout = c.Limits.ReplyTimeout
	opts.ShutdownGrace = c.ShutdownGrace
	opts.AdminToken = adminToken
	opts.Logger = logger
	return opts, nil
}

// check checks the limits that broker.Options gained beside max_packet_size and max_queued.
func (l limitsConfig) check(ps *problems) {
	checkPositive(ps, "limits.list_limit", l.ListLimit)
	checkNotNegative(ps, "limits.max_rooms_per_user", l.MaxRoomsPerUser, "means no limit")
	checkNotNegative(ps, "limits.max_room_message_size", l.MaxRoomMessageSize, "leaves only limits.max_packet_size")
	checkNotNegative(ps, "limits.max_connections_per_user", l.MaxConnectionsPerUser, "means no limit")
	checkNotNegative(ps, "limits.max_subscriptions_per_connection", l.MaxSubscriptionsPerConnection, "means no limit")
	switch r := l.PublishRate; {
	case math.IsNaN(r) || math.IsInf(r, 0):
		ps.addf("limits.publish_rate", "want a number of messages per second, got %v", r)
	case r < 0:
		ps.addf("limits.publish_rate", "must not be negative (0 means no limit), got %v", r)
	}
	checkNotNegative(ps, "limits.publish_burst", l.PublishBurst, "means the same as limits.publish_rate")
	if l.PublishBurst > 0 && l.PublishRate == 0 {
		ps.addf("limits.publish_burst", "is set, but limits.publish_rate is 0 (no limit)")
	}
}

// topicRules checks the acl section and returns the topic rules in force: nil, every plain
// topic allowed, for the development default (default allow without rules).
func (a aclConfig) topicRules(ps *problems) *acl.Rules {
	n := len(*ps)
	var defaultAllow bool
	switch a.Default {
	case aclAllow:
		defaultAllow = true
	case aclDeny:
	default:
		ps.addf("acl.default", "unknown default %q (want %s or %s)", a.Default, aclAllow, aclDeny)
	}
	rules := make([]acl.Rule, 0, len(a.Rules))
	for i, text := range a.Rules {
		r, err := acl.ParseRule(text)
		if err != nil {
			ps.addf(fmt.Sprintf("acl.rules[%d]", i), "%v", err)
			continue
		}
		rules = append(rules, r)
	}
	if len(*ps) > n || (defaultAllow && len(rules) == 0) {
		return nil
	}
	rs, err := acl.NewRules(rules, defaultAllow)
	if err != nil {
		ps.addf("acl.rules", "%v", err) // unexpected: ParseRule checked every rule
		return nil
	}
	return rs
}

// checkAddr checks a listen address; "" is valid and disables the listener.
func checkAddr(ps *problems, key, addr string) {
	if addr == "" {
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		ps.addf(key, "want host:port or :port, or \"\" to disable the listener: %v", err)
	}
}

func checkName(ps *problems, key, kind, name string) {
	if !wire.ValidName(name) {
		ps.addf(key, "%q is not a valid %s name (1-128 characters, no / + # : { }, control characters or leading $)", name, kind)
	}
}

func checkPositive(ps *problems, key string, n int) {
	if n <= 0 {
		ps.addf(key, "must be positive, got %d", n)
	}
}

// checkNotNegative checks a limit where 0 has a meaning, which zero tells ("means no limit").
func checkNotNegative(ps *problems, key string, n int, zero string) {
	if n < 0 {
		ps.addf(key, "must not be negative (0 %s), got %d", zero, n)
	}
}

// validOrigin reports whether o is "*" or exactly scheme://host[:port], the form browsers send
// and the WebSocket listener accepts.
func validOrigin(o string) bool {
	if o == "*" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Scheme != "" && u.Host != "" && strings.EqualFold(o, u.Scheme+"://"+u.Host)
}
