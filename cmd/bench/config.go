package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/roomq/roomq/broker"
)

// Names of the scenarios.
const (
	scenarioFanout      = "fanout"
	scenarioRooms       = "rooms"
	scenarioRPC         = "rpc"
	scenarioConnections = "connections"
	scenarioResume      = "resume"
)

var scenarios = []string{scenarioFanout, scenarioRooms, scenarioRPC, scenarioConnections, scenarioResume}

// Config is one invocation of the tool; each field is set by the flag of the same name (see
// parseConfig), and the JSON report repeats it.
type Config struct {
	// Scenario is fanout, rooms, rpc, connections or resume.
	Scenario string `json:"scenario"`
	// Target is the broker of a single run: a built-in name or a tcp:// or ws:// URL.
	Target string `json:"target,omitempty"`
	// Compare runs the scenario against every target of Targets.
	Compare bool     `json:"compare,omitempty"`
	Targets []string `json:"targets,omitempty"`
	// Transport is tcp or ws, for the brokers the tool starts.
	Transport string `json:"transport"`
	// Isolate runs the Go brokers the tool starts (roomq-memory, roomq-redis, mochi) in a
	// child process instead of the tool's own.
	Isolate bool `json:"isolate"`
	// WriteDelay is the roomq targets' mqtt.write_delay (broker.Options.WriteDelay).
	WriteDelay time.Duration `json:"writeDelay,omitempty"`
	// TopicMode is room or plain, for brokers named by URL.
	TopicMode string `json:"topicMode"`
	// Duration is the length of the load phase; Count, when not 0, ends it earlier (messages
	// per publisher, requests per RPC client, resumes per subscriber); Drain is the time left
	// for outstanding deliveries afterwards.
	Duration time.Duration `json:"duration"`
	Count    int           `json:"count"`
	Drain    time.Duration `json:"drain"`

	// Publishers and Subscribers size fanout and resume (Publishers is per room in rooms).
	Publishers  int `json:"publishers"`
	Subscribers int `json:"subscribers"`
	// QoS is the QoS of publishes and subscriptions.
	QoS int `json:"qos"`
	// Size is the payload size in bytes.
	Size int `json:"size"`
	// Rate is messages per second per publisher; 0 is as fast as possible.
	Rate float64 `json:"rate"`
	// Inflight is the number of concurrent unacknowledged QoS 1 publishes per publisher.
	Inflight int `json:"inflight"`
	// Room names the room (or plain topic level) of fanout, rpc and resume, and prefixes the
	// rooms of the rooms scenario.
	Room string `json:"room"`
	// Subscriber is the client of pure subscribers: paho or raw.
	Subscriber string `json:"subscriber"`

	// Rooms and Members size the rooms scenario.
	Rooms   int `json:"rooms"`
	Members int `json:"members"`

	// Clients is the number of RPC requesters; RPC is history or device; History is the
	// number of messages one roomHistoryGet reads.
	Clients int    `json:"clients"`
	RPC     string `json:"rpc"`
	History int    `json:"history"`
	// Requester is the client of -rpc history: raw or client.
	Requester string `json:"requester"`

	// Conns, ConnRate and Sources shape the connections scenario; Sources also applies to
	// the other scenarios.
	Conns    int     `json:"conns"`
	ConnRate float64 `json:"connRate"`
	Sources  int     `json:"sources"`

	// ResumeEvery is the mean time between the resumes of one subscriber.
	ResumeEvery time.Duration `json:"resumeEvery"`

	// User prefixes the user names of the clients; Password is sent by all of them.
	User     string `json:"user"`
	Password string `json:"-"`

	// JSON, CPUProfile and Quiet shape the output.
	JSON       bool   `json:"-"`
	CPUProfile string `json:"-"`
	Quiet      bool   `json:"-"`
}

// parseConfig reads the command line: an optional scenario name first, then flags.
func parseConfig(args []string, stderr io.Writer) (*Config, error) {
	cfg := &Config{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: bench [%s] [flags]\n       bench compare [scenario] [flags]\n\nflags:\n",
			strings.Join(scenarios, "|"))
		fs.PrintDefaults()
	}
	var targets string
	fs.StringVar(&cfg.Scenario, "scenario", scenarioFanout, "scenario: "+strings.Join(scenarios, ", "))
	fs.StringVar(&cfg.Target, "target", targetRoomqMemory, "broker: "+strings.Join(builtinTargets, ", ")+" (started here) or a tcp:// or ws:// URL")
	fs.BoolVar(&cfg.Compare, "compare", false, "run the scenario against every target of -targets and print ratios vs plain Mochi")
	fs.StringVar(&targets, "targets", strings.Join(builtinTargets, ","), "comma-separated targets of -compare")
	fs.StringVar(&cfg.Transport, "transport", "tcp", "transport to brokers started here: tcp or ws")
	fs.BoolVar(&cfg.Isolate, "isolate", true, "run roomq-memory, roomq-redis and mochi in a child process of the tool, as mosquitto runs: their own Go runtime, garbage collector and CPU profile, mem/conn their RSS; false: inside the tool's process, sharing its runtime with the clients (the method before)")
	fs.DurationVar(&cfg.WriteDelay, "write-delay", broker.DefaultWriteDelay, "mqtt.write_delay of the roomq targets started here: how long a connection's writer waits for more deliveries to write together")
	fs.StringVar(&cfg.TopicMode, "topic-mode", "room", "for URL targets: room (roomq rooms/{room}, $rpc) or plain (bench/{room})")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "load phase length")
	fs.IntVar(&cfg.Count, "count", 0, "messages per publisher, requests per RPC client, or resumes per subscriber (0: until -duration)")
	fs.DurationVar(&cfg.Drain, "drain", 3*time.Second, "how long to wait for outstanding deliveries after the load phase")
	fs.IntVar(&cfg.Publishers, "publishers", 1, "publishers (fanout, resume) or publishing members per room (rooms)")
	fs.IntVar(&cfg.Subscribers, "subscribers", 10, "subscribers (fanout, resume)")
	fs.IntVar(&cfg.QoS, "qos", 0, "QoS of publishes and subscriptions: 0 or 1")
	fs.IntVar(&cfg.Size, "size", 64, fmt.Sprintf("payload size in bytes (at least %d)", headerSize))
	fs.Float64Var(&cfg.Rate, "rate", 0, "messages per second per publisher (0: as fast as possible)")
	fs.IntVar(&cfg.Inflight, "inflight", 16, "concurrent unacknowledged QoS 1 publishes per publisher")
	fs.StringVar(&cfg.Room, "room", "bench", "room name (topic rooms/{room}, or bench/{room} on plain brokers)")
	fs.StringVar(&cfg.Subscriber, "subscriber", "paho", "client of pure subscribers (fanout, rooms): paho, or raw (a minimal reader that skips properties, so that the tool costs less CPU than the broker)")
	fs.IntVar(&cfg.Rooms, "rooms", 10, "rooms (rooms scenario)")
	fs.IntVar(&cfg.Members, "members", 5, "members per room (rooms scenario)")
	fs.IntVar(&cfg.Clients, "clients", 4, "concurrent RPC requesters (rpc)")
	fs.StringVar(&cfg.RPC, "rpc", "history", "rpc kind: history ($rpc/roomHistoryGet) or device (request/response through response topics)")
	fs.IntVar(&cfg.History, "history", 100, "messages per roomHistoryGet")
	fs.StringVar(&cfg.Requester, "requester", "raw", "client of -rpc history: raw (a minimal MQTT client that checks each answer with a scan, so that the tool costs less CPU than the broker; requests at -qos) or client (the project's client package, client.RoomHistoryGet, which decodes every message; QoS 1 requests)")
	fs.IntVar(&cfg.Conns, "conns", 1000, "idle connections (connections)")
	fs.Float64Var(&cfg.ConnRate, "conn-rate", 1000, "connections opened per second (connections; 0: as fast as possible)")
	fs.IntVar(&cfg.Sources, "sources", 0, "spread connections over this many source addresses 127.0.0.2... (0: default)")
	fs.DurationVar(&cfg.ResumeEvery, "resume-every", 500*time.Millisecond, "how often each subscriber disconnects and resumes (resume)")
	fs.StringVar(&cfg.User, "user", "bench", "user name prefix of the clients")
	fs.StringVar(&cfg.Password, "password", "", "password of the clients")
	fs.BoolVar(&cfg.JSON, "json", false, "print the report as JSON")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile to this file: of the Go broker's child process (only the broker), or with -isolate=false of the whole tool (broker and clients); none for mosquitto or URL targets (with -compare: one file per target, name suffixed)")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no progress lines")

	if len(args) > 0 && args[0] == "compare" {
		cfg.Compare = true
		args = args[1:]
	}
	positional := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		positional, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if positional != "" {
		cfg.Scenario = positional
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, t := range strings.Split(targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Targets = append(cfg.Targets, t)
		}
	}
	return cfg, cfg.validate()
}

// validate checks the configuration.
func (c *Config) validate() error {
	var errs []error
	known := false
	for _, s := range scenarios {
		known = known || s == c.Scenario
	}
	if !known {
		errs = append(errs, fmt.Errorf("unknown scenario %q", c.Scenario))
	}
	if c.Duration <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	if c.QoS < 0 || c.QoS > 1 {
		errs = append(errs, errors.New("-qos must be 0 or 1"))
	}
	if c.Transport != "tcp" && c.Transport != "ws" {
		errs = append(errs, errors.New("-transport must be tcp or ws"))
	}
	if c.TopicMode != "room" && c.TopicMode != "plain" {
		errs = append(errs, errors.New("-topic-mode must be room or plain"))
	}
	if c.Subscriber != "paho" && c.Subscriber != "raw" {
		errs = append(errs, errors.New("-subscriber must be paho or raw"))
	}
	if c.RPC != "history" && c.RPC != "device" {
		errs = append(errs, errors.New("-rpc must be history or device"))
	}
	if c.Requester != "raw" && c.Requester != "client" {
		errs = append(errs, errors.New("-requester must be raw or client"))
	}
	if c.Publishers < 1 || c.Subscribers < 0 || c.Rooms < 1 || c.Members < 1 || c.Clients < 1 || c.Conns < 1 {
		errs = append(errs, errors.New("-publishers, -rooms, -members, -clients and -conns must be at least 1"))
	}
	if c.Inflight < 1 {
		c.Inflight = 1
	}
	if c.Compare && len(c.Targets) == 0 {
		errs = append(errs, errors.New("-compare needs -targets"))
	}
	return errors.Join(errs...)
}

// roomNames returns the rooms a roomq broker started here must have.
func (c *Config) roomNames() []string {
	if c.Scenario == scenarioRooms {
		names := make([]string, c.Rooms)
		for i := range names {
			names[i] = fmt.Sprintf("%s-%d", c.Room, i)
		}
		return names
	}
	return []string{c.Room}
}

// profilePath returns the CPU profile file of the run against target: -cpuprofile, suffixed
// with the target's name when -compare runs several targets; "" without -cpuprofile.
func (c *Config) profilePath(target string) string {
	if c.CPUProfile != "" && c.Compare && len(c.Targets) > 1 {
		return c.CPUProfile + "." + target
	}
	return c.CPUProfile
}

// topic returns the topic of room on t: rooms/{room} on roomq, bench/{room} elsewhere.
func topic(t *target, room string) string {
	if t.rooms {
		return "rooms/" + room
	}
	return "bench/" + room
}
