package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/hooks"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
)

const exampleFile = "../../config.example.yaml"

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// wantDefaultOptions are the options broker.New ends up with when given DefaultOptions, made
// explicit, with the default room notifying like rooms created by roomCreate.
func wantDefaultOptions() broker.Options {
	o := broker.DefaultOptions()
	o.AllowedOrigins = []string{}
	o.Admins = []string{broker.DefaultAdminUser}
	o.Rooms = []store.Room{{
		Name:              broker.DefaultGeneralRoom,
		Owner:             broker.DefaultAdminUser,
		Checker:           rooms.CheckerText,
		NotifyUserlist:    o.NotifyUserlist,
		NotifyAccessLists: o.NotifyAccessLists,
	}}
	o.HistoryMaxSize = rooms.DefaultHistoryMaxSize
	o.HistoryMaxGetMessages = rooms.DefaultHistoryMaxGetMessages
	o.MaxPacketSize = broker.DefaultMaxPacketSize
	o.MaxQueued = hooks.DefaultMaxQueued
	o.ListLimit = commands.DefaultListLimit
	o.ShutdownGrace = broker.DefaultShutdownGrace
	o.Logger = discard
	return o
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load runs loadConfig with file (if not "") as --config before args, then brokerOptions.
func load(t *testing.T, file string, environ []string, args ...string) (config, broker.Options, error) {
	t.Helper()
	if file != "" {
		args = append([]string{"--config", writeFile(t, file)}, args...)
	}
	cfg, err := loadConfig(args, environ)
	if err != nil {
		return cfg, broker.Options{}, err
	}
	opts, err := cfg.brokerOptions(discard)
	return cfg, opts, err
}

func TestDefaults(t *testing.T) {
	cfg, err := loadConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, defaultConfig()) {
		t.Errorf("config = %+v, want %+v", cfg, defaultConfig())
	}
	opts, err := cfg.brokerOptions(discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := wantDefaultOptions(); !reflect.DeepEqual(opts, want) {
		t.Errorf("options =\n%+v\nwant\n%+v", opts, want)
	}
}

func TestExampleFile(t *testing.T) {
	cfg, err := loadConfig([]string{"--config", exampleFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.file != exampleFile {
		t.Errorf("file = %q, want %q", cfg.file, exampleFile)
	}
	opts, err := cfg.brokerOptions(discard)
	if err != nil {
		t.Fatal(err)
	}
	// The example documents the defaults: loading it must change nothing.
	if want := wantDefaultOptions(); !reflect.DeepEqual(opts, want) {
		t.Errorf("options =\n%+v\nwant\n%+v", opts, want)
	}
	// And it lists every key.
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range knownKeys.sorted {
		last := key[strings.LastIndex(key, ".")+1:]
		if !strings.Contains(string(data), last+":") {
			t.Errorf("%s does not mention %s", exampleFile, key)
		}
	}
}

func TestPrecedence(t *testing.T) {
	const file = `
mqtt: {addr: "127.0.0.1:1001"}
http: {addr: "127.0.0.1:2001", allowed_origins: ["https://a.example"]}
log: {level: debug}
history: {max_size: 500}
instance_id: from-file
`
	tests := []struct {
		name    string
		file    string
		environ []string
		args    []string
		check   func(t *testing.T, o broker.Options)
	}{
		{
			name: "file overrides defaults",
			file: file,
			check: func(t *testing.T, o broker.Options) {
				want := wantDefaultOptions()
				want.MQTTAddr, want.HTTPAddr = "127.0.0.1:1001", "127.0.0.1:2001"
				want.AllowedOrigins = []string{"https://a.example"}
				want.HistoryMaxSize = 500
				want.InstanceID = "from-file"
				if !reflect.DeepEqual(o, want) {
					t.Errorf("options =\n%+v\nwant\n%+v", o, want)
				}
			},
		},
		{
			name: "environment overrides file",
			file: file,
			environ: []string{
				"PATH=/bin", "ROOMQ_MQTT__ADDR=127.0.0.1:1002", "ROOMQ_HISTORY__MAX_SIZE=600",
				"ROOMQ_HTTP__ALLOWED_ORIGINS=https://b.example, http://c.example:8080",
				"ROOMQ_SHUTDOWN_GRACE=1m30s", "ROOMQ_ROOMS__MANAGEMENT=false",
			},
			check: func(t *testing.T, o broker.Options) {
				check(t, "MQTTAddr", o.MQTTAddr, "127.0.0.1:1002")
				check(t, "HTTPAddr", o.HTTPAddr, "127.0.0.1:2001")
				check(t, "HistoryMaxSize", o.HistoryMaxSize, 600)
				check(t, "AllowedOrigins", o.AllowedOrigins, []string{"https://b.example", "http://c.example:8080"})
				check(t, "ShutdownGrace", o.ShutdownGrace, 90*time.Second)
				check(t, "RoomsManagement", o.RoomsManagement, false)
				check(t, "InstanceID", o.InstanceID, "from-file")
			},
		},
		{
			name:    "flags override environment",
			file:    file,
			environ: []string{"ROOMQ_MQTT__ADDR=127.0.0.1:1002", "ROOMQ_INSTANCE_ID=from-env"},
			args:    []string{"--mqtt-addr", "127.0.0.1:1003", "--instance-id=from-flag"},
			check: func(t *testing.T, o broker.Options) {
				check(t, "MQTTAddr", o.MQTTAddr, "127.0.0.1:1003")
				check(t, "InstanceID", o.InstanceID, "from-flag")
				check(t, "HTTPAddr", o.HTTPAddr, "127.0.0.1:2001")
			},
		},
		{
			name:    "flags left unset do not override",
			environ: []string{"ROOMQ_LOG__LEVEL=error"},
			args:    []string{"--log-format", "json"},
			check: func(t *testing.T, o broker.Options) {
				check(t, "MQTTAddr", o.MQTTAddr, broker.DefaultMQTTAddr)
			},
		},
		{
			name:    "empty address disables a listener",
			file:    "http: {addr: ''}\n",
			args:    []string{"--mqtt-addr="},
			environ: []string{"ROOMQ_HTTP__ADDR=127.0.0.1:0"},
			check: func(t *testing.T, o broker.Options) {
				check(t, "MQTTAddr", o.MQTTAddr, "")
				check(t, "HTTPAddr", o.HTTPAddr, "127.0.0.1:0")
			},
		},
		{
			name: "null resets a value",
			file: "mqtt: {addr: null}\n",
			check: func(t *testing.T, o broker.Options) {
				check(t, "MQTTAddr", o.MQTTAddr, "")
			},
		},
		{
			name: "rooms replace the default room",
			file: `
auth: {admins: [alice, bob]}
rooms:
  notify_userlist: false
  defaults:
    - {name: lobby}
    - {name: raw, owner: bob, checker: binary, whitelist_only: true}
`,
			check: func(t *testing.T, o broker.Options) {
				check(t, "Admins", o.Admins, []string{"alice", "bob"})
				check(t, "NoDefaultRooms", o.NoDefaultRooms, false)
				check(t, "NotifyUserlist", o.NotifyUserlist, false)
				check(t, "Rooms", o.Rooms, []store.Room{
					{Name: "lobby", Owner: "alice", Checker: rooms.CheckerText, NotifyAccessLists: true},
					{Name: "raw", Owner: "bob", Checker: rooms.CheckerBinary, WhitelistOnly: true, NotifyAccessLists: true},
				})
			},
		},
		{
			name: "no rooms",
			file: "rooms: {defaults: []}\n",
			check: func(t *testing.T, o broker.Options) {
				check(t, "Rooms", len(o.Rooms), 0)
				check(t, "NoDefaultRooms", o.NoDefaultRooms, true)
			},
		},
		{
			name:    "environment lists",
			environ: []string{"ROOMQ_AUTH__ADMINS=root, ops", "ROOMQ_HTTP__ALLOWED_ORIGINS="},
			check: func(t *testing.T, o broker.Options) {
				check(t, "Admins", o.Admins, []string{"root", "ops"})
				check(t, "AllowedOrigins", o.AllowedOrigins, []string{})
			},
		},
		{
			name:    "test variables are ignored",
			environ: []string{"ROOMQ_TEST_LOG=1"},
			check: func(t *testing.T, o broker.Options) {
				check(t, "MQTTAddr", o.MQTTAddr, broker.DefaultMQTTAddr)
			},
		},
		{
			name: "empty file",
			file: "# nothing\n",
			check: func(t *testing.T, o broker.Options) {
				if want := wantDefaultOptions(); !reflect.DeepEqual(o, want) {
					t.Errorf("options =\n%+v\nwant\n%+v", o, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, opts, err := load(t, tt.file, tt.environ, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, opts)
		})
	}
}

func check[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func TestSourcesRecorded(t *testing.T) {
	cfg, err := loadConfig([]string{"--config", exampleFile}, []string{
		"ROOMQ_LOG__LEVEL=warn", "ROOMQ_HISTORY__MAX_SIZE=5", "HOME=/root", "ROOMQ_TEST_LOG=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "file", cfg.file, exampleFile)
	check(t, "envVars", cfg.envVars, []string{"ROOMQ_HISTORY__MAX_SIZE", "ROOMQ_LOG__LEVEL"})
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		environ []string
		args    []string
		want    []string // substrings of the error
	}{
		{name: "log level", file: "log: {level: loud}", want: []string{"log.level", `"loud"`}},
		{name: "log format flag", args: []string{"--log-format", "xml"}, want: []string{"log.format", `"xml"`}},
		{name: "auth mode", file: "auth: {mode: ldap}", want: []string{"auth.mode", `"ldap"`, "supported: none, static, jwt, http"}},
		{name: "auth mode env", environ: []string{"ROOMQ_AUTH__MODE=JWT"}, want: []string{"auth.mode", `"JWT"`}},
		{name: "no admins", file: "auth: {admins: []}", want: []string{"auth.admins"}},
		{name: "bad admin", file: "auth: {admins: [ok, 'a/b']}", want: []string{"auth.admins[1]"}},
		{name: "room name", file: "rooms: {defaults: [{name: 'a/b'}]}", want: []string{"rooms.defaults[0].name", `"a/b"`}},
		{name: "room name empty", file: "rooms: {defaults: [{owner: admin}]}", want: []string{"rooms.defaults[0].name"}},
		{name: "room name dollar", file: "rooms: {defaults: [{name: x}, {name: $sys}]}", want: []string{"rooms.defaults[1].name"}},
		{name: "room twice", file: "rooms: {defaults: [{name: x}, {name: x}]}", want: []string{"rooms.defaults[1].name", "twice"}},
		{name: "room owner", file: "rooms: {defaults: [{name: x, owner: '#'}]}", want: []string{"rooms.defaults[0].owner"}},
		{name: "room checker", file: "rooms: {defaults: [{name: x, checker: xml}]}", want: []string{"rooms.defaults[0].checker", "text, json, binary"}},
		{name: "room unknown key", file: "rooms: {defaults: [{name: x, whitelistonly: true}]}", want: []string{"rooms.defaults[0]", "whitelistonly"}},
		{name: "rooms from env", environ: []string{"ROOMQ_ROOMS__DEFAULTS=x"}, want: []string{"ROOMQ_ROOMS__DEFAULTS", "config file"}},
		{name: "negative history", file: "history: {max_size: -1}", want: []string{"history.max_size", "positive"}},
		{name: "zero get messages", environ: []string{"ROOMQ_HISTORY__MAX_GET_MESSAGES=0"}, want: []string{"history.max_get_messages"}},
		{name: "negative packet size", file: "limits: {max_packet_size: -5}", want: []string{"limits.max_packet_size"}},
		{name: "huge packet size", file: "limits: {max_packet_size: 4294967296}", want: []string{"limits.max_packet_size", "at most"}},
		{name: "fraction", file: "limits: {max_packet_size: 1.5}", want: []string{"limits.max_packet_size", "whole number"}},
		{name: "zero queue", file: "limits: {max_queued: 0}", want: []string{"limits.max_queued"}},
		{name: "not a number", file: "history: {max_size: lots}", want: []string{"config file", "history.max_size"}},
		{name: "not a number env", environ: []string{"ROOMQ_HISTORY__MAX_SIZE=abc"}, want: []string{"environment", "ROOMQ_HISTORY__MAX_SIZE"}},
		{name: "not a bool", file: "rooms: {management: maybe}", want: []string{"rooms.management"}},
		{name: "duration without unit", file: "shutdown_grace: 10", want: []string{"shutdown_grace", "unit"}},
		{name: "duration garbage", environ: []string{"ROOMQ_SHUTDOWN_GRACE=soon"}, want: []string{"ROOMQ_SHUTDOWN_GRACE", "unit"}},
		{name: "negative duration", file: "shutdown_grace: -1s", want: []string{"shutdown_grace", "positive"}},
		{name: "write delay too long", file: "mqtt: {write_delay: 1s}", want: []string{"mqtt.write_delay", "100ms"}},
		{name: "negative write delay", file: "mqtt: {write_delay: -1ms}", want: []string{"mqtt.write_delay"}},
		{name: "unknown top-level key", file: "histroy: {max_size: 5}", want: []string{"histroy.max_size", "unknown key", "did you mean history.max_size"}},
		{name: "unknown nested key", file: "history: {maxsize: 5}", want: []string{"history.maxsize", "did you mean history.max_size"}},
		{name: "unknown key no suggestion", file: "cluster: {peers: [a]}", want: []string{"cluster.peers", "unknown key"}},
		{name: "unknown key case", file: "MQTT: {addr: ':1'}", want: []string{"MQTT.addr", "did you mean mqtt.addr"}},
		{name: "section as value", file: "mqtt: 1883", want: []string{"mqtt", "section", "mqtt.addr"}},
		{name: "null section", file: "history: null", want: []string{"history", "section"}},
		{name: "unknown env", environ: []string{"ROOMQ_MQTT_ADDR=:1"}, want: []string{"ROOMQ_MQTT_ADDR", "unknown key", "did you mean ROOMQ_MQTT__ADDR"}},
		{name: "env section and key", environ: []string{"ROOMQ_HISTORY=1", "ROOMQ_HISTORY__MAX_SIZE=5"}, want: []string{"ROOMQ_HISTORY: is a section"}},
		{name: "env section", environ: []string{"ROOMQ_LOG=debug"}, want: []string{"ROOMQ_LOG", "ROOMQ_LOG__LEVEL"}},
		{name: "bad address", args: []string{"--mqtt-addr", "localhost"}, want: []string{"mqtt.addr"}},
		{name: "bad tls address", file: "mqtt: {tls_addr: '8883'}", want: []string{"mqtt.tls_addr"}},

		{name: "acl default", file: "acl: {default: open}", want: []string{"acl.default", `"open"`, "allow or deny"}},
		{name: "acl rule action", file: "acl: {rules: ['allow pub a/#', 'permit pub b']}", want: []string{"acl.rules[1]", `unknown action "permit"`}},
		{name: "acl rule access", file: "acl: {rules: ['allow publish a']}", want: []string{"acl.rules[0]", `unknown access "publish"`}},
		{name: "acl rule placeholder", file: "acl: {rules: ['allow pubsub devices/%x/#']}", want: []string{"acl.rules[0]", `"%x"`}},
		{name: "acl rule filter", file: "acl: {rules: ['deny sub a/#/b']}", want: []string{"acl.rules[0]", "last level"}},
		// An unquoted " #" starts a YAML comment: the rule loses its filter.
		{name: "acl rule comment", file: "acl:\n  rules:\n    - deny sub #\n", want: []string{"acl.rules[0]", "missing topic filter"}},
		{name: "acl rules env", environ: []string{"ROOMQ_ACL__RULES=allow pub a/#,allow"}, want: []string{"acl.rules[1]"}},
		{name: "acl rules every problem", file: "acl: {default: x, rules: [nope, 'allow pub a', '']}", want: []string{"acl.default", "acl.rules[0]", "acl.rules[2]"}},

		{name: "zero list limit", file: "limits: {list_limit: 0}", want: []string{"limits.list_limit", "positive"}},
		{name: "negative rooms per user", file: "limits: {max_rooms_per_user: -1}", want: []string{"limits.max_rooms_per_user", "negative"}},
		{name: "negative room message size", file: "limits: {max_room_message_size: -1}", want: []string{"limits.max_room_message_size", "negative"}},
		{name: "negative publish rate", file: "limits: {publish_rate: -0.5}", want: []string{"limits.publish_rate", "negative"}},
		{name: "infinite publish rate", file: "limits: {publish_rate: .inf}", want: []string{"limits.publish_rate"}},
		{name: "NaN publish rate", environ: []string{"ROOMQ_LIMITS__PUBLISH_RATE=NaN"}, want: []string{"limits.publish_rate"}},
		{name: "publish rate not a number", environ: []string{"ROOMQ_LIMITS__PUBLISH_RATE=fast"}, want: []string{"ROOMQ_LIMITS__PUBLISH_RATE"}},
		{name: "negative publish burst", file: "limits: {publish_rate: 1, publish_burst: -1}", want: []string{"limits.publish_burst", "negative"}},
		{name: "burst without rate", file: "limits: {publish_burst: 10}", want: []string{"limits.publish_burst", "limits.publish_rate is 0"}},
		{name: "fractional burst", file: "limits: {publish_rate: 1, publish_burst: 1.5}", want: []string{"limits.publish_burst", "whole number"}},
		{name: "negative connections", environ: []string{"ROOMQ_LIMITS__MAX_CONNECTIONS_PER_USER=-2"}, want: []string{"limits.max_connections_per_user", "negative"}},
		{name: "negative subscriptions", file: "limits: {max_subscriptions_per_connection: -1}", want: []string{"limits.max_subscriptions_per_connection", "negative"}},
		{name: "negative room size", file: "rooms: {defaults: [{name: x}, {name: y, max_message_size: -1}]}", want: []string{"rooms.defaults[1].max_message_size", "negative"}},

		{name: "tls addr without cert", file: "mqtt: {tls_addr: ':8883'}", want: []string{"tls.cert_file: required when mqtt.tls_addr is set", "tls.key_file: required when mqtt.tls_addr is set"}},
		{name: "https without cert", environ: []string{"ROOMQ_HTTP__TLS=true"}, want: []string{"tls.cert_file: required when http.tls is true", "tls.key_file"}},
		{name: "tls without key", file: "mqtt: {tls_addr: ':8883'}\nhttp: {tls: true}\ntls: {cert_file: c.pem}", want: []string{"tls.key_file: required when mqtt.tls_addr is set and http.tls is true"}},
		{name: "https without http", file: "http: {addr: '', tls: true}\ntls: {cert_file: c.pem, key_file: k.pem}", want: []string{"http.tls", "http.addr is empty"}},
		{name: "cert without listener", file: "tls: {cert_file: c.pem, key_file: k.pem}", want: []string{"tls.cert_file: is set, but no listener uses TLS", "tls.key_file: is set"}},
		{name: "tls version", file: "tls: {min_version: '1.1'}", want: []string{"tls.min_version", `"1.1"`}},
		{name: "tls version number", file: "tls: {min_version: 1.0}", want: []string{"tls.min_version"}},
		{name: "no listener", args: []string{"--mqtt-addr", "", "--http-addr", ""}, want: []string{"mqtt.addr, mqtt.tls_addr, http.addr"}},
		{name: "bad origin", file: "http: {allowed_origins: ['*', 'https://ok.example', 'https://x.example/path']}", want: []string{"http.allowed_origins[2]"}},
		{name: "bad instance id", args: []string{"--instance-id", "a/b"}, want: []string{"instance_id"}},
		{name: "yaml syntax", file: "mqtt: [", want: []string{"config file"}},
		{name: "yaml not a mapping", file: "- a\n- b\n", want: []string{"config file"}},
		{
			name: "every problem reported",
			file: "log: {level: loud}\nhistory: {max_size: 0}\nauth: {mode: jwt}",
			want: []string{"log.level", "history.max_size", "auth.jwt.algorithms"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, tt.file, tt.environ, tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, errUsage) {
				t.Errorf("configuration error %q is a usage error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := loadConfig([]string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}, nil)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("err = %v, want a not-exist error naming the file", err)
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		want error
	}{
		{[]string{"-h"}, pflag.ErrHelp},
		{[]string{"--help"}, pflag.ErrHelp},
		{[]string{"--mqtt-addr", ":1", "--help"}, pflag.ErrHelp},
		{[]string{"--bogus"}, errUsage},
		{[]string{"-x"}, errUsage},
		{[]string{"--mqtt-addr"}, errUsage},
		{[]string{"serve"}, errUsage},
		{[]string{"--help=maybe"}, errUsage},
	}
	for _, tt := range tests {
		_, err := loadConfig(tt.args, nil)
		if !errors.Is(err, tt.want) {
			t.Errorf("loadConfig(%q) = %v, want %v", tt.args, err, tt.want)
		}
	}
}

func TestFlags(t *testing.T) {
	fs := newFlagSet()
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" || f.Name == "help" {
			return
		}
		key, ok := flagKeys[f.Name]
		if !ok {
			t.Errorf("flag --%s sets no key", f.Name)
			return
		}
		if _, ok := knownKeys.leaves[key]; !ok {
			t.Errorf("flag --%s sets unknown key %s", f.Name, key)
		}
	})
	for name := range flagKeys {
		if fs.Lookup(name) == nil {
			t.Errorf("flagKeys names missing flag --%s", name)
		}
	}
	var buf bytes.Buffer
	printUsage(&buf)
	for _, s := range []string{"--config", "--mqtt-addr", "--http-addr", "--log-level", "--log-format", "--instance-id", "--help", "ROOMQ_"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("usage does not mention %s", s)
		}
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("WARN", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("output %q is not one JSON object: %v", buf.String(), err)
	}
	if line["msg"] != "shown" || line["level"] != "WARN" {
		t.Errorf("logged %v", line)
	}

	buf.Reset()
	log, err = newLogger("debug", "text", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hello")
	if !strings.Contains(buf.String(), "level=DEBUG msg=hello") {
		t.Errorf("logged %q", buf.String())
	}

	for _, tt := range [][2]string{{"verbose", "text"}, {"info", "xml"}, {"", "text"}, {"info", ""}} {
		if _, err := newLogger(tt[0], tt[1], io.Discard); err == nil {
			t.Errorf("newLogger(%q, %q) succeeded", tt[0], tt[1])
		}
	}
}

func TestSuggest(t *testing.T) {
	tests := map[string]string{
		"mqtt_addr":               "mqtt.addr",
		"histroy.max_size":        "history.max_size",
		"shutdown.grace":          "shutdown_grace",
		"rooms.notify_user_list":  "rooms.notify_userlist",
		"tls.cert":                "",
		"tls.certfile":            "tls.cert_file",
		"limits.publishrate":      "limits.publish_rate",
		"something.else.entirely": "",
	}
	for in, want := range tests {
		if got := suggest(in); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzConfigFile checks that no configuration file makes loading or validation panic, and that
// accepted files give options broker.New can take.
func FuzzConfigFile(f *testing.F) {
	example, err := os.ReadFile(exampleFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	production, err := os.ReadFile(productionFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(production)
	f.Add([]byte("acl: {default: deny, rules: ['allow pubsub devices/%c/#']}\nlimits: {publish_rate: 0.5, max_room_message_size: 10}\n"))
	f.Add([]byte("rooms: {defaults: [{name: x, checker: json}]}\nshutdown_grace: 1s\n"))
	f.Add([]byte("mqtt: null\nhttp: {addr: ':0'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig([]string{"--config", path}, nil)
		if err != nil {
			return
		}
		opts, err := cfg.brokerOptions(discard)
		if err != nil {
			return
		}
		if opts.MaxPacketSize == 0 || opts.HistoryMaxSize <= 0 || opts.ShutdownGrace <= 0 {
			t.Errorf("accepted options with unset limits: %+v", opts)
		}
		if slices.ContainsFunc(opts.Rooms, func(r store.Room) bool { return r.Owner == "" }) {
			t.Errorf("accepted a room without owner: %+v", opts.Rooms)
		}
		if (opts.MQTTTLSAddr != "" || opts.HTTPTLS) && opts.TLS == nil {
			t.Errorf("accepted a TLS listener without TLS: %+v", opts)
		}
		if opts.ListLimit <= 0 || opts.PublishRate < 0 || opts.PublishBurst < 0 || opts.MaxRoomMessageSize < 0 ||
			opts.MaxRoomsPerUser < 0 || opts.MaxConnectionsPerUser < 0 || opts.MaxSubscriptionsPerConnection < 0 {
			t.Errorf("accepted bad limits: %+v", opts)
		}
	})
}

func TestLimits(t *testing.T) {
	const file = `
limits:
  list_limit: 50
  max_rooms_per_user: 3
  max_room_message_size: 2048
  publish_rate: 2.5
  publish_burst: 7
  max_connections_per_user: 4
  max_subscriptions_per_connection: 9
rooms:
  defaults:
    - {name: small, max_message_size: 100}
    - {name: default}
`
	_, o, err := load(t, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "ListLimit", o.ListLimit, 50)
	check(t, "MaxRoomsPerUser", o.MaxRoomsPerUser, 3)
	check(t, "MaxRoomMessageSize", o.MaxRoomMessageSize, 2048)
	check(t, "PublishRate", o.PublishRate, 2.5)
	check(t, "PublishBurst", o.PublishBurst, 7)
	check(t, "MaxConnectionsPerUser", o.MaxConnectionsPerUser, 4)
	check(t, "MaxSubscriptionsPerConnection", o.MaxSubscriptionsPerConnection, 9)
	// A room without its own size is left at 0: the broker gives it MaxRoomMessageSize.
	check(t, "Rooms[].MaxMessageSize", []int{o.Rooms[0].MaxMessageSize, o.Rooms[1].MaxMessageSize}, []int{100, 0})

	// The environment sets them too, the rate as a fraction.
	_, o, err = load(t, "", []string{
		"ROOMQ_LIMITS__PUBLISH_RATE=0.5", "ROOMQ_LIMITS__MAX_CONNECTIONS_PER_USER=20",
		"ROOMQ_LIMITS__MAX_SUBSCRIPTIONS_PER_CONNECTION=100", "ROOMQ_LIMITS__LIST_LIMIT=1",
		"ROOMQ_LIMITS__MAX_ROOMS_PER_USER=0", "ROOMQ_LIMITS__MAX_ROOM_MESSAGE_SIZE=65536",
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "PublishRate", o.PublishRate, 0.5)
	check(t, "PublishBurst", o.PublishBurst, 0)
	check(t, "MaxConnectionsPerUser", o.MaxConnectionsPerUser, 20)
	check(t, "MaxSubscriptionsPerConnection", o.MaxSubscriptionsPerConnection, 100)
	check(t, "ListLimit", o.ListLimit, 1)
	check(t, "MaxRoomsPerUser", o.MaxRoomsPerUser, 0)
	check(t, "MaxRoomMessageSize", o.MaxRoomMessageSize, 65536)
}

func TestTopicRules(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		environ []string
		// nilRules is true when every plain topic stays open without rules.
		nilRules bool
		// allowed and denied are "pub TOPIC" or "sub FILTER" of user alice, client c1.
		allowed, denied []string
	}{
		{name: "default", nilRules: true},
		{name: "explicit allow without rules", file: "acl: {default: allow, rules: []}", nilRules: true},
		{
			name:    "deny with a device rule",
			file:    "acl:\n  default: deny\n  rules:\n    - \"allow pubsub devices/%c/#\"\n    - allow sub devices/+/status\n",
			allowed: []string{"pub devices/c1/temp", "sub devices/c1/#", "sub devices/+/status"},
			denied:  []string{"pub devices/c2/temp", "sub devices/+/temp", "pub other", "sub #"},
		},
		{
			name:    "allow with a deny rule",
			file:    "acl: {rules: ['deny pub secret/#', 'deny sub \"secret/#\"']}",
			allowed: []string{"pub other", "sub public/+"},
			denied:  []string{"pub secret/x", "sub #"},
		},
		{
			name:    "first match decides",
			file:    "acl: {default: deny, rules: ['deny pub scratch/%u/ro', 'allow pubsub scratch/%u/#']}",
			allowed: []string{"pub scratch/alice/rw", "sub scratch/alice/ro"},
			denied:  []string{"pub scratch/alice/ro", "pub scratch/bob/rw"},
		},
		{
			name:    "from the environment",
			environ: []string{"ROOMQ_ACL__DEFAULT=deny", "ROOMQ_ACL__RULES=allow pub up/%u, allow sub down/%u"},
			allowed: []string{"pub up/alice", "sub down/alice"},
			denied:  []string{"sub up/alice", "pub down/alice"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, o, err := load(t, tt.file, tt.environ)
			if err != nil {
				t.Fatal(err)
			}
			if (o.TopicRules == nil) != tt.nilRules {
				t.Fatalf("TopicRules = %v, want nil: %v", o.TopicRules, tt.nilRules)
			}
			judge := func(op string) bool {
				kind, topic, _ := strings.Cut(op, " ")
				if kind == "pub" {
					return o.TopicRules.Publish("alice", "c1", topic)
				}
				return o.TopicRules.Subscribe("alice", "c1", topic)
			}
			for _, op := range tt.allowed {
				if !judge(op) {
					t.Errorf("%s refused", op)
				}
			}
			for _, op := range tt.denied {
				if judge(op) {
					t.Errorf("%s allowed", op)
				}
			}
		})
	}
}

const productionFile = "../../config.production.yaml"

// productionEnv points the files config.production.yaml names at new files in a temporary
// directory, and returns the pool trusting the certificate.
func productionEnv(t *testing.T) ([]string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, pool := testCert(t, dir)
	return []string{
		"ROOMQ_TLS__CERT_FILE=" + certFile,
		"ROOMQ_TLS__KEY_FILE=" + keyFile,
		"ROOMQ_AUTH__STATIC__FILE=" + usersFile(t, dir),
	}, pool
}

func TestProductionFile(t *testing.T) {
	environ, _ := productionEnv(t)
	cfg, err := loadConfig([]string{"--config", productionFile}, environ)
	if err != nil {
		t.Fatal(err)
	}
	o, err := cfg.brokerOptions(discard)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "MQTTAddr", o.MQTTAddr, "127.0.0.1:1883")
	check(t, "MQTTTLSAddr", o.MQTTTLSAddr, ":8883")
	check(t, "HTTPTLS", o.HTTPTLS, true)
	if o.TLS == nil || len(o.TLS.Certificates) != 1 || o.TLS.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLS = %+v, want one certificate, TLS 1.2 at least", o.TLS)
	}
	if _, ok := o.Authenticator.(*acl.StaticAuth); !ok {
		t.Errorf("Authenticator = %T, want *acl.StaticAuth", o.Authenticator)
	}
	if o.TopicRules == nil || !o.TopicRules.Publish("u", "dev1", "devices/dev1/temp") || o.TopicRules.Publish("u", "dev1", "devices/dev2/temp") || o.TopicRules.Subscribe("u", "dev1", "#") {
		t.Errorf("TopicRules are not: default deny, allow pubsub devices/%%c/#")
	}
	check(t, "RoomsManagement", o.RoomsManagement, true)
	check(t, "limits", []float64{
		float64(o.MaxConnectionsPerUser), float64(o.MaxSubscriptionsPerConnection), o.PublishRate,
		float64(o.PublishBurst), float64(o.MaxRoomMessageSize), float64(o.MaxRoomsPerUser), float64(o.ListLimit),
	}, []float64{20, 100, 50, 100, 65536, 20, 10000})
	if o.MaxRoomMessageSize > int(o.MaxPacketSize) {
		t.Errorf("max_room_message_size %d over max_packet_size %d", o.MaxRoomMessageSize, o.MaxPacketSize)
	}
	if len(o.AllowedOrigins) == 0 || slices.Contains(o.AllowedOrigins, "*") {
		t.Errorf("AllowedOrigins = %q, want an explicit list", o.AllowedOrigins)
	}
	check(t, "log.format", cfg.Log.Format, "json")
}

// TestProductionFileNeedsItsFiles checks that the production example, whose files do not
// exist here, stops with errors naming each key and file.
func TestProductionFileNeedsItsFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key, users := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem"), filepath.Join(dir, "users.yaml")
	_, _, err := load(t, "", []string{
		"ROOMQ_TLS__CERT_FILE=" + cert, "ROOMQ_TLS__KEY_FILE=" + key, "ROOMQ_AUTH__STATIC__FILE=" + users,
	}, "--config", productionFile)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"tls.cert_file: open " + cert, "tls.key_file: open " + key, "auth.static.file: open " + users} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// TestProductionFileServes starts a broker with the production example on loopback ports and
// logs in over MQTT over TLS, and checks HTTPS.
func TestProductionFileServes(t *testing.T) {
	environ, pool := productionEnv(t)
	environ = append(environ, "ROOMQ_MQTT__ADDR=127.0.0.1:0", "ROOMQ_MQTT__TLS_ADDR=127.0.0.1:0", "ROOMQ_HTTP__ADDR=127.0.0.1:0")
	cfg, err := loadConfig([]string{"--config", productionFile}, environ)
	if err != nil {
		t.Fatal(err)
	}
	o, err := cfg.brokerOptions(discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	// MQTT 3.1.1 CONNECT of alice (users file of usersFile) over TLS: CONNACK accepted.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", b.MQTTTLSAddr(), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 60}, str("dev1")...)
	body = append(append(body, str("alice")...), str("pw-alice")...)
	if _, err := conn.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	connack := make([]byte, 4)
	if _, err := io.ReadFull(conn, connack); err != nil {
		t.Fatal(err)
	}
	check(t, "CONNACK", connack, []byte{0x20, 2, 0, 0})

	// HTTPS.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	resp, err := client.Get("https://" + b.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	check(t, "GET /healthz", resp.StatusCode, http.StatusOK)
	// TLS 1.1 is refused.
	old := clientTLS.Clone()
	old.MaxVersion = tls.VersionTLS11
	if c, err := tls.Dial("tcp", b.MQTTTLSAddr(), old); err == nil {
		c.Close()
		t.Error("TLS 1.1 accepted")
	}
}
