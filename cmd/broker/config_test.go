package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/roomq/roomq/broker"
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
		{name: "unknown top-level key", file: "histroy: {max_size: 5}", want: []string{"histroy.max_size", "unknown key", "did you mean history.max_size"}},
		{name: "unknown nested key", file: "history: {maxsize: 5}", want: []string{"history.maxsize", "did you mean history.max_size"}},
		{name: "unknown key no suggestion", file: "tls: {cert: x.pem}", want: []string{"tls.cert", "unknown key"}},
		{name: "unknown key case", file: "MQTT: {addr: ':1'}", want: []string{"MQTT.addr", "did you mean mqtt.addr"}},
		{name: "section as value", file: "mqtt: 1883", want: []string{"mqtt", "section", "mqtt.addr"}},
		{name: "null section", file: "history: null", want: []string{"history", "section"}},
		{name: "unknown env", environ: []string{"ROOMQ_MQTT_ADDR=:1"}, want: []string{"ROOMQ_MQTT_ADDR", "unknown key", "did you mean ROOMQ_MQTT__ADDR"}},
		{name: "env section and key", environ: []string{"ROOMQ_HISTORY=1", "ROOMQ_HISTORY__MAX_SIZE=5"}, want: []string{"ROOMQ_HISTORY: is a section"}},
		{name: "env section", environ: []string{"ROOMQ_LOG=debug"}, want: []string{"ROOMQ_LOG", "ROOMQ_LOG__LEVEL"}},
		{name: "bad address", args: []string{"--mqtt-addr", "localhost"}, want: []string{"mqtt.addr"}},
		{name: "no listener", args: []string{"--mqtt-addr", "", "--http-addr", ""}, want: []string{"mqtt.addr, http.addr"}},
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
	})
}
