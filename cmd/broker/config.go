package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	env "github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/hooks"
	"github.com/roomq/roomq/rooms"
)

// config is the configuration of the binary. Keys are the koanf tags, joined with "." for
// nesting (history.max_size); config.example.yaml documents every one. The sources, each
// overriding the one before: defaultConfig, the YAML file named by --config, ROOMQ_
// environment variables, command-line flags.
type config struct {
	MQTT           mqttConfig    `koanf:"mqtt"`
	HTTP           httpConfig    `koanf:"http"`
	InstanceID     string        `koanf:"instance_id"`
	FailureTimeout time.Duration `koanf:"failure_timeout"`
	Log            logConfig     `koanf:"log"`
	Rooms          roomsConfig   `koanf:"rooms"`
	History        historyConfig `koanf:"history"`
	Limits         limitsConfig  `koanf:"limits"`
	Auth           authConfig    `koanf:"auth"`
	ACL            aclConfig     `koanf:"acl"`
	TLS            tlsConfig     `koanf:"tls"`
	Store          storeConfig   `koanf:"store"`
	ShutdownGrace  time.Duration `koanf:"shutdown_grace"`
	// AdminAPI configures the admin HTTP API (adminapi.go).
	AdminAPI adminAPIConfig `koanf:"admin_api"`

	// Bridges link this broker to others (package bridge).
	Bridges []bridgeConfig `koanf:"bridges"`

	// file is the configuration file read, or "" without one.
	file string
	// envVars are the names (never the values) of the environment variables applied, sorted.
	envVars []string
}

type mqttConfig struct {
	Addr       string        `koanf:"addr"`
	TLSAddr    string        `koanf:"tls_addr"`
	WriteDelay time.Duration `koanf:"write_delay"`
}

type httpConfig struct {
	Addr           string   `koanf:"addr"`
	TLS            bool     `koanf:"tls"`
	AllowedOrigins []string `koanf:"allowed_origins"`
}

type logConfig struct {
	Level  string `koanf:"level"`
	Format string `koanf:"format"`
}

type roomsConfig struct {
	Management        bool         `koanf:"management"`
	NotifyUserlist    bool         `koanf:"notify_userlist"`
	NotifyAccessLists bool         `koanf:"notify_access_lists"`
	Defaults          []roomConfig `koanf:"defaults"`
}

// roomConfig is one room created at start when missing.
type roomConfig struct {
	Name           string `koanf:"name"`
	Owner          string `koanf:"owner"`
	Checker        string `koanf:"checker"`
	WhitelistOnly  bool   `koanf:"whitelist_only"`
	MaxMessageSize int    `koanf:"max_message_size"`
}

type historyConfig struct {
	MaxSize        int `koanf:"max_size"`
	MaxGetMessages int `koanf:"max_get_messages"`
}

type limitsConfig struct {
	MaxPacketSize                 int           `koanf:"max_packet_size"`
	MaxQueued                     int           `koanf:"max_queued"`
	MaxPendingWrites              int           `koanf:"max_pending_writes"`
	ListLimit                     int           `koanf:"list_limit"`
	MaxRoomsPerUser               int           `koanf:"max_rooms_per_user"`
	MaxRoomMessageSize            int           `koanf:"max_room_message_size"`
	PublishRate                   float64       `koanf:"publish_rate"`
	PublishBurst                  int           `koanf:"publish_burst"`
	MaxConnectionsPerUser         int           `koanf:"max_connections_per_user"`
	MaxSubscriptionsPerConnection int           `koanf:"max_subscriptions_per_connection"`
	ReplyTimeout                  time.Duration `koanf:"reply_timeout"`
}

type authConfig struct {
	Mode   string           `koanf:"mode"`
	Admins []string         `koanf:"admins"`
	Static staticAuthConfig `koanf:"static"`
	JWT    jwtAuthConfig    `koanf:"jwt"`
	HTTP   httpAuthConfig   `koanf:"http"`
}

type staticAuthConfig struct {
	File string `koanf:"file"`
}

type jwtAuthConfig struct {
	Algorithms    []string `koanf:"algorithms"`
	Secret        string   `koanf:"secret"`
	SecretFile    string   `koanf:"secret_file"`
	PublicKeyFile string   `koanf:"public_key_file"`
	Issuer        string   `koanf:"issuer"`
	Audience      string   `koanf:"audience"`
	QueryParam    string   `koanf:"query_param"`
	Cookie        string   `koanf:"cookie"`
	RolesClaim    string   `koanf:"roles_claim"`
}

type httpAuthConfig struct {
	URL      string        `koanf:"url"`
	Timeout  time.Duration `koanf:"timeout"`
	CacheTTL time.Duration `koanf:"cache_ttl"`
}

// aclConfig holds the topic ACL rules of plain topics, in the text form of acl.ParseRule.
type aclConfig struct {
	Default string   `koanf:"default"`
	Rules   []string `koanf:"rules"`
}

// tlsConfig names the certificate of the TLS listeners (mqtt.tls_addr, http.tls).
type tlsConfig struct {
	CertFile   string `koanf:"cert_file"`
	KeyFile    string `koanf:"key_file"`
	MinVersion string `koanf:"min_version"`
}

// The values of auth.mode.
const (
	// authModeNone is development mode: every user name is accepted with any password.
	authModeNone = "none"
	// authModeStatic checks passwords against the bcrypt hashes of a users file.
	authModeStatic = "static"
	// authModeJWT takes signed JSON Web Tokens.
	authModeJWT = "jwt"
	// authModeHTTP asks an HTTP backend.
	authModeHTTP = "http"
)

// authModes lists the values of auth.mode.
var authModes = []string{authModeNone, authModeStatic, authModeJWT, authModeHTTP}

// The values of acl.default: what the topic rules decide for a plain topic no rule matches.
const (
	// aclAllow allows it: the development default, any MQTT client works out of the box.
	aclAllow = "allow"
	// aclDeny refuses it: only what a rule allows is open.
	aclDeny = "deny"
)

// The values of tls.min_version.
const (
	tlsVersion12 = "1.2"
	tlsVersion13 = "1.3"
)

// defaultConfig returns the built-in defaults, those of broker.DefaultOptions and of the
// packages it assembles.
func defaultConfig() config {
	d := broker.DefaultOptions()
	return config{
		MQTT: mqttConfig{Addr: d.MQTTAddr, WriteDelay: d.WriteDelay},
		HTTP: httpConfig{Addr: d.HTTPAddr, AllowedOrigins: []string{}},
		Log:  logConfig{Level: "info", Format: "text"},
		Rooms: roomsConfig{
			Management:        d.RoomsManagement,
			NotifyUserlist:    d.NotifyUserlist,
			NotifyAccessLists: d.NotifyAccessLists,
			Defaults: []roomConfig{{
				Name:    broker.DefaultGeneralRoom,
				Owner:   broker.DefaultAdminUser,
				Checker: rooms.CheckerText,
			}},
		},
		History: historyConfig{
			MaxSize:        rooms.DefaultHistoryMaxSize,
			MaxGetMessages: rooms.DefaultHistoryMaxGetMessages,
		},
		Limits: limitsConfig{
			MaxPacketSize:    broker.DefaultMaxPacketSize,
			MaxQueued:        hooks.DefaultMaxQueued,
			MaxPendingWrites: broker.DefaultMaxPendingWrites,
			ListLimit:        commands.DefaultListLimit,
			ReplyTimeout:     hooks.DefaultReplyTimeout,
		},
		Auth: authConfig{
			Mode:   authModeNone,
			Admins: []string{broker.DefaultAdminUser},
			JWT: jwtAuthConfig{
				Algorithms: []string{},
				QueryParam: acl.DefaultJWTQueryParam,
				RolesClaim: acl.DefaultJWTRolesClaim,
			},
			HTTP: httpAuthConfig{Timeout: acl.DefaultHTTPAuthTimeout, CacheTTL: acl.DefaultHTTPAuthCacheTTL},
		},
		ACL:            aclConfig{Default: aclAllow, Rules: []string{}},
		TLS:            tlsConfig{MinVersion: tlsVersion12},
		Store:          defaultStoreConfig(),
		ShutdownGrace:  broker.DefaultShutdownGrace,
		FailureTimeout: broker.DefaultFailureTimeout,
	}
}

// Environment variables: envPrefix, then the key in upper case with envNesting between levels
// (ROOMQ_HISTORY__MAX_SIZE is history.max_size). Lists are comma-separated. Names starting
// with envTestPrefix belong to the test suite and are ignored.
const (
	envPrefix     = "ROOMQ_"
	envNesting    = "__"
	envTestPrefix = "ROOMQ_TEST_"
)

// flagKeys maps each flag that sets a configuration key to that key.
var flagKeys = map[string]string{
	"mqtt-addr":   "mqtt.addr",
	"http-addr":   "http.addr",
	"log-level":   "log.level",
	"log-format":  "log.format",
	"instance-id": "instance_id",
}

// newFlagSet returns the command-line flags, with the built-in defaults as their defaults. It
// prints nothing: the caller prints errors and usage.
func newFlagSet() *pflag.FlagSet {
	d := defaultConfig()
	fs := pflag.NewFlagSet("broker", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.String("config", "", "read settings from this YAML `file` (see config.example.yaml)")
	fs.String("mqtt-addr", d.MQTT.Addr, "MQTT over TCP listen `address`; \"\" disables it")
	fs.String("http-addr", d.HTTP.Addr, "HTTP listen `address` (WebSocket /mqtt, /healthz, /readyz); \"\" disables it")
	fs.String("log-level", d.Log.Level, "log `level`: debug, info, warn or error")
	fs.String("log-format", d.Log.Format, "log `format`: text or json")
	fs.String("instance-id", d.InstanceID, "`name` of this instance; empty means a random id")
	fs.BoolP("help", "h", false, "print this help and exit")
	return fs
}

// printUsage writes the command-line help to w.
func printUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage: broker [flags]
       broker passwd --file FILE --user NAME [--role ROLE]...

Runs the roomq MQTT broker. Each setting comes from, in increasing precedence: the built-in
defaults, the YAML file given with --config, environment variables, flags.

Environment variables are %[1]s followed by the key in upper case, with %[2]s between
levels: %[1]sHISTORY%[2]sMAX_SIZE=500 sets history.max_size. Lists are comma-separated:
%[1]sAUTH%[2]sADMINS=alice,bob. config.example.yaml lists and explains every key;
config.production.yaml is a commented starting point for production. Unknown keys, in the
file or as %[1]s variables, are errors.

"broker passwd" adds a user to, or changes a password in, the users file of auth.mode
static; "broker passwd -h" explains it.

Flags:
%[3]s`, envPrefix, envNesting, newFlagSet().FlagUsages())
}

// loadConfig reads the configuration from args (the command line without the program name)
// and environ (KEY=value pairs, as os.Environ returns), and the file args name, if any. It
// touches no other process state. It returns pflag.ErrHelp when help was asked for and an
// error wrapping errUsage for a malformed command line. It checks keys and types; values are
// checked by config.brokerOptions.
func loadConfig(args []string, environ []string) (config, error) {
	fs := newFlagSet()
	if err := fs.Parse(args); err != nil {
		return config{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	if help, _ := fs.GetBool("help"); help {
		return config{}, pflag.ErrHelp
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}

	merged := koanf.New(".")
	file, _ := fs.GetString("config")
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return config{}, fmt.Errorf("config file: %w", err)
		}
		l := layer{source: "config file " + file, spell: func(key string) string { return key }}
		if err := l.load(merged, rawbytes.Provider(data), yaml.Parser()); err != nil {
			return config{}, err
		}
	}

	vars := map[string]string{} // key -> the variable that set it
	var envProblems problems
	envLayer := layer{source: "environment", read: &envProblems, spell: func(key string) string {
		if name, ok := vars[key]; ok {
			return name
		}
		return envName(key)
	}}
	envProvider := env.Provider(".", env.Opt{
		Prefix:      envPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			if strings.HasPrefix(name, envTestPrefix) {
				return "", nil
			}
			key := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, envPrefix), envNesting, "."))
			vars[key] = name
			// Drop bad keys here: left in, they could clash when nested (ROOMQ_LOG=x and
			// ROOMQ_LOG__LEVEL=y).
			if p := envLayer.keyProblem(key, false); p != "" {
				envProblems.addf(name, "%s", p)
				return "", nil
			}
			switch t := knownKeys.leaves[key]; {
			case t == reflect.TypeFor[[]string]():
				return key, splitList(value)
			case t.Kind() == reflect.Slice:
				envProblems.addf(name, "%s cannot be set from the environment; use the config file", key)
				return "", nil
			}
			return key, value
		},
	})
	if err := envLayer.load(merged, envProvider, nil); err != nil {
		return config{}, err
	}

	flagProvider := posflag.ProviderWithFlag(fs, ".", nil, func(f *pflag.Flag) (string, any) {
		key, ok := flagKeys[f.Name]
		if !ok {
			return "", nil
		}
		return key, posflag.FlagVal(fs, f)
	})
	flagLayer := layer{source: "command line", spell: func(key string) string {
		for flag, k := range flagKeys {
			if k == key {
				return "--" + flag
			}
		}
		return key
	}}
	if err := flagLayer.load(merged, flagProvider, nil); err != nil {
		return config{}, err
	}

	cfg := defaultConfig()
	if err := decode(merged, &cfg); err != nil {
		// Unexpected: every layer decoded on its own.
		return config{}, problemsOf(err, func(key string) string { return key }).err("configuration")
	}
	cfg.file = file
	for _, name := range vars {
		cfg.envVars = append(cfg.envVars, name)
	}
	sort.Strings(cfg.envVars)
	return cfg, nil
}

// layer is one source of settings.
type layer struct {
	// source names the source in errors.
	source string
	// spell returns how the source writes key (a variable name, a flag), for errors.
	spell func(key string) string
	// read, if not nil, holds the problems found while the provider read the source.
	read *problems
}

// load reads the layer, checks that it sets only known keys with values of the right types,
// and merges it into merged.
func (l layer) load(merged *koanf.Koanf, p koanf.Provider, pa koanf.Parser) error {
	k := koanf.New(".")
	if err := k.Load(p, pa); err != nil {
		return fmt.Errorf("%s: %w", l.source, err)
	}
	var ps problems
	if l.read != nil {
		ps = append(ps, *l.read...)
	}
	for _, key := range k.Keys() {
		_, isMap := k.Get(key).(map[string]any)
		if p := l.keyProblem(key, isMap); p != "" {
			ps.addf(l.spell(key), "%s", p)
		}
	}
	if err := ps.err(l.source); err != nil {
		return err
	}
	scratch := defaultConfig()
	if err := decode(k, &scratch); err != nil {
		return problemsOf(err, l.spell).err(l.source)
	}
	if err := merged.Merge(k); err != nil {
		return fmt.Errorf("%s: %w", l.source, err)
	}
	return nil
}

// keyProblem returns what is wrong with key as the layer sets it, or "" for a known key.
// isMap tells whether the value is a mapping, which a section needs.
func (l layer) keyProblem(key string, isMap bool) string {
	if _, ok := knownKeys.leaves[key]; ok {
		return ""
	}
	if knownKeys.sections[key] {
		if isMap {
			return "" // an empty section
		}
		return fmt.Sprintf("is a section, not a value; set its keys instead (%s)", l.sectionKeys(key))
	}
	if s := suggest(key); s != "" {
		return fmt.Sprintf("unknown key (did you mean %s?)", l.spell(s))
	}
	return "unknown key"
}

// sectionKeys lists the keys of a section as the layer spells them.
func (l layer) sectionKeys(section string) string {
	var keys []string
	for _, key := range knownKeys.sorted {
		if strings.HasPrefix(key, section+".") {
			keys = append(keys, l.spell(key))
		}
	}
	return strings.Join(keys, ", ")
}

// decode decodes k onto out, which holds the defaults. Lists replace the default lists; an
// explicit null sets the zero value; unknown keys, also inside rooms.defaults entries, are
// errors.
func decode(k *koanf.Koanf, out *config) error {
	return k.UnmarshalWithConf("", out, koanf.UnmarshalConf{DecoderConfig: &mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.ComposeDecodeHookFunc(durationHook, wholeNumberHook),
		WeaklyTypedInput: true, // environment variables and flags are strings
		ErrorUnused:      true,
		ZeroFields:       true,
		TagName:          "koanf",
	}})
}

// durationHook parses durations from strings with a unit ("10s", "1m30s"). A bare number is
// refused: mapstructure would read it as nanoseconds.
func durationHook(_, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	switch v := data.(type) {
	case time.Duration:
		return v, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("want a duration with a unit, like 10s or 1m30s: %w", err)
		}
		return d, nil
	}
	return nil, fmt.Errorf("want a duration with a unit, like 10s or 1m30s, got %v", data)
}

// wholeNumberHook refuses fractions for integer settings, which mapstructure would truncate.
func wholeNumberHook(_, to reflect.Type, data any) (any, error) {
	if f, ok := data.(float64); ok && to.Kind() == reflect.Int && f != math.Trunc(f) {
		return nil, fmt.Errorf("want a whole number, got %v", f)
	}
	return data, nil
}

// splitList splits a comma-separated environment value; an empty value is an empty list.
func splitList(s string) []string {
	out := []string{}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// envName returns the environment variable that sets key.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", envNesting))
}

// keySet describes the keys of config.
type keySet struct {
	// leaves maps each key that takes a value to its Go type.
	leaves map[string]reflect.Type
	// sections holds the keys of nested sections (mqtt, history, ...).
	sections map[string]bool
	// sorted lists the leaves in order.
	sorted []string
}

// knownKeys are the keys of config, read from its koanf tags.
var knownKeys = collectKeys(reflect.TypeFor[config]())

func collectKeys(t reflect.Type) keySet {
	ks := keySet{leaves: map[string]reflect.Type{}, sections: map[string]bool{}}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("koanf")
			if !f.IsExported() || tag == "" || tag == "-" {
				continue
			}
			key := prefix + tag
			if f.Type.Kind() == reflect.Struct {
				ks.sections[key] = true
				walk(f.Type, key+".")
				continue
			}
			ks.leaves[key] = f.Type
			ks.sorted = append(ks.sorted, key)
		}
	}
	walk(t, "")
	sort.Strings(ks.sorted)
	return ks
}

// suggest returns the known key closest to an unknown one, or "".
func suggest(key string) string {
	squash := strings.NewReplacer("_", "", ".", "", "-", "")
	want := squash.Replace(strings.ToLower(key))
	best, bestDist := "", 3 // at most two edits away
	for _, known := range knownKeys.sorted {
		if d := editDistance(want, squash.Replace(known)); d < bestDist {
			best, bestDist = known, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// problems collects what is wrong with a configuration, each "key: what".
type problems []string

func (p *problems) addf(key, format string, args ...any) {
	*p = append(*p, key+": "+fmt.Sprintf(format, args...))
}

// err returns nil without problems, else one error naming context and every problem.
func (p problems) err(context string) error {
	switch len(p) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s: %s", context, p[0])
	}
	return fmt.Errorf("%s:\n\t%s", context, strings.Join(p, "\n\t"))
}

// problemsOf turns a mapstructure error into problems, spelling known keys with spell.
func problemsOf(err error, spell func(key string) string) problems {
	var ps problems
	var walk func(error)
	walk = func(err error) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		var de *mapstructure.DecodeError
		if errors.As(err, &de) {
			name := de.Name()
			if _, ok := knownKeys.leaves[name]; ok {
				name = spell(name)
			}
			ps.addf(name, "%v", de.Unwrap())
			return
		}
		ps = append(ps, err.Error())
	}
	walk(err)
	return slices.Compact(ps)
}
