package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
)

// Names of the brokers the tool can start itself.
const (
	targetRoomqMemory = "roomq-memory"
	targetRoomqRedis  = "roomq-redis"
	targetMochi       = "mochi"
	targetMosquitto   = "mosquitto"
)

// builtinTargets are the targets of a comparison, in table order.
var builtinTargets = []string{targetRoomqMemory, targetRoomqRedis, targetMochi, targetMosquitto}

// benchOwner owns the rooms the tool creates.
const benchOwner = "admin"

// errSkipped marks a target that cannot run on this machine (a binary is missing).
var errSkipped = errors.New("skipped")

// target is a broker under test.
type target struct {
	name string
	url  string
	// rooms is true for roomq: room topics, broker RPC and resume exist.
	rooms bool
	// memory returns the broker's memory in bytes, when it can be measured: the Go heap and
	// stacks of an in-process broker, or the resident size of a child process.
	memory     func() (uint64, error)
	memoryKind string
	// inProcess is true when the broker runs inside this process (it shares the CPU
	// profile and the Go runtime with the clients).
	inProcess bool
	// roomsReady is true when the rooms of the run were created as the broker started.
	roomsReady bool
	stop       func(context.Context) error
}

// startTarget starts or names the broker called name: a built-in name or a broker URL.
// roomNames lists the rooms a roomq broker started here must have.
func startTarget(ctx context.Context, name string, cfg *Config, roomNames []string) (*target, error) {
	switch name {
	case targetRoomqMemory, targetRoomqRedis, targetMochi:
		return startGoBroker(ctx, name, cfg, roomNames)
	case targetMosquitto:
		return startMosquitto(ctx, cfg)
	}
	if strings.Contains(name, "://") {
		return &target{name: name, url: name, rooms: cfg.TopicMode == "room", stop: func(context.Context) error { return nil }}, nil
	}
	return nil, fmt.Errorf("unknown target %q (want %s or a tcp:// or ws:// URL)", name, strings.Join(builtinTargets, ", "))
}

// brokerSpec is a Go broker to start: in this process, or in a child process that gets the
// spec as JSON in the environment variable childEnv.
type brokerSpec struct {
	// Target is roomq-memory, roomq-redis or mochi.
	Target string `json:"target"`
	// Transport is tcp or ws: the listener the broker's URL names.
	Transport string `json:"transport"`
	// Rooms are created at start with the binary checker (roomq only).
	Rooms []string `json:"rooms,omitempty"`
	// RedisAddr is the host:port of the redis-server of roomq-redis.
	RedisAddr string `json:"redisAddr,omitempty"`
	// CPUProfile, when set, is the file of a child's CPU profile, from its start to its stop.
	CPUProfile string `json:"cpuProfile,omitempty"`
	// WriteDelay is roomq's broker.Options.WriteDelay.
	WriteDelay time.Duration `json:"writeDelay,omitempty"`
}

// startGoBroker starts roomq or Mochi in a child process (cfg.Isolate) or in this process.
// The redis-server of roomq-redis is always a child of this process.
func startGoBroker(ctx context.Context, name string, cfg *Config, roomNames []string) (*target, error) {
	spec := brokerSpec{Target: name, Transport: cfg.Transport, Rooms: roomNames, WriteDelay: cfg.WriteDelay}
	var stopRedis func()
	if name == targetRoomqRedis {
		addr, stop, err := startRedis(ctx)
		if err != nil {
			return nil, err
		}
		spec.RedisAddr, stopRedis = addr, stop
	}
	if cfg.Isolate {
		spec.CPUProfile = cfg.profilePath(name)
		return startChild(ctx, spec, stopRedis)
	}
	return spec.start(ctx, stopRedis)
}

// start starts the broker of s in this process. stopExtra stops the redis-server of
// roomq-redis (nil for the other targets): it runs after the broker stopped or failed to
// start.
func (s brokerSpec) start(ctx context.Context, stopExtra func()) (*target, error) {
	cfg := &Config{Transport: s.Transport, WriteDelay: s.WriteDelay}
	switch s.Target {
	case targetRoomqMemory:
		return startRoomq(ctx, s.Target, cfg, s.Rooms, store.NewMemory(), stopExtra)
	case targetRoomqRedis:
		return startRoomqRedis(ctx, cfg, s.Rooms, s.RedisAddr, stopExtra)
	case targetMochi:
		return startMochi(cfg)
	}
	if stopExtra != nil {
		stopExtra()
	}
	return nil, fmt.Errorf("unknown Go broker %q", s.Target)
}

// brokerLogger is the logger of the brokers started here: errors only.
func brokerLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// inProcessMemory returns the Go heap and stack in use.
func inProcessMemory() (uint64, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, nil
}

// startRoomq starts this project's broker in-process on st, in development auth mode, with
// roomNames created with the binary checker. stopExtra runs after the broker stopped.
func startRoomq(ctx context.Context, name string, cfg *Config, roomNames []string, st store.Store, stopExtra func()) (*target, error) {
	opts := broker.DefaultOptions()
	opts.MQTTAddr = "127.0.0.1:0"
	opts.HTTPAddr = "127.0.0.1:0"
	opts.Store = st
	opts.Logger = brokerLogger()
	opts.NotifyUserlist = false // presence and join events are not under test
	opts.WriteDelay = cfg.WriteDelay
	for _, r := range roomNames {
		opts.Rooms = append(opts.Rooms, store.Room{Name: r, Owner: benchOwner, Checker: rooms.CheckerBinary})
	}
	b, err := broker.New(opts)
	if err != nil {
		if stopExtra != nil {
			stopExtra()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := b.Start(ctx); err != nil {
		_ = b.Shutdown(ctx)
		if stopExtra != nil {
			stopExtra()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	u := "tcp://" + b.MQTTAddr()
	if cfg.Transport == "ws" {
		u = "ws://" + b.HTTPAddr() + "/mqtt"
	}
	return &target{
		name: name, url: u, rooms: true, inProcess: true, roomsReady: true,
		memory: inProcessMemory, memoryKind: "Go HeapInuse+StackInuse",
		stop: func(ctx context.Context) error {
			err := b.Shutdown(ctx)
			if stopExtra != nil {
				stopExtra()
			}
			if err != nil {
				return fmt.Errorf("stop %s: %w", name, err)
			}
			return nil
		},
	}, nil
}

// startRedis starts a private redis-server on a free port and returns its address and the
// function that stops it.
func startRedis(ctx context.Context) (string, func(), error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("%w: redis-server is not installed", errSkipped)
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	p, err := startProcess("redis", bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	if err != nil {
		return "", nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitTCP(ctx, addr); err != nil {
		p.stop()
		return "", nil, fmt.Errorf("start redis-server: %w (%s)", err, p.output())
	}
	return addr, p.stop, nil
}

// startRoomqRedis starts this project's broker on the Redis at addr; stopExtra, when not
// nil, runs after the broker stopped or failed to start.
func startRoomqRedis(ctx context.Context, cfg *Config, roomNames []string, addr string, stopExtra func()) (*target, error) {
	fail := func(err error) (*target, error) {
		if stopExtra != nil {
			stopExtra()
		}
		return nil, err
	}
	client, err := store.NewRedisClient([]string{"redis://" + addr})
	if err != nil {
		return fail(fmt.Errorf("redis client: %w", err))
	}
	var st *store.Redis
	for deadline := time.Now().Add(5 * time.Second); ; { // the port opens before Redis loads
		st, err = store.NewRedis(ctx, store.RedisOptions{Client: client, Prefix: "bench"})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		_ = client.Close()
		return fail(fmt.Errorf("redis store: %w", err))
	}
	return startRoomq(ctx, targetRoomqRedis, cfg, roomNames, st, stopExtra)
}

// startMochi starts plain Mochi MQTT in-process with no hooks but auth.AllowHook: the baseline.
func startMochi(cfg *Config) (*target, error) {
	s := mqtt.New(&mqtt.Options{Logger: brokerLogger(), InlineClient: false})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("start mochi: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := s.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("start mochi: %w", err)
	}
	u := "tcp://" + tcp.Address()
	if cfg.Transport == "ws" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := s.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: addr})); err != nil {
			return nil, fmt.Errorf("start mochi: %w", err)
		}
		u = "ws://" + addr + "/mqtt"
	}
	if err := s.Serve(); err != nil {
		return nil, fmt.Errorf("start mochi: %w", err)
	}
	if err := waitTCP(context.Background(), hostPort(u)); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("start mochi: %w", err)
	}
	return &target{
		name: targetMochi, url: u, inProcess: true,
		memory: inProcessMemory, memoryKind: "Go HeapInuse+StackInuse",
		stop: func(context.Context) error {
			if err := s.Close(); err != nil {
				return fmt.Errorf("stop mochi: %w", err)
			}
			return nil
		},
	}, nil
}

// hostPort returns the host:port of a broker URL.
func hostPort(u string) string {
	u = u[strings.Index(u, "://")+3:]
	if i := strings.IndexByte(u, '/'); i >= 0 {
		u = u[:i]
	}
	return u
}

// startMosquitto starts the mosquitto binary on a free port with anonymous access, when it is
// installed.
func startMosquitto(ctx context.Context, cfg *Config) (*target, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			return nil, fmt.Errorf("%w: mosquitto is not installed (apt-get install mosquitto)", errSkipped)
		}
		bin = "/usr/sbin/mosquitto"
	}
	dir, err := os.MkdirTemp("", "bench-mosquitto-")
	if err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	u := "tcp://" + addr
	// No limit on queued messages (the default, 1000, drops QoS 1 messages under this load,
	// which would compare a lossy Mosquitto with lossless Go brokers) and TCP_NODELAY as the
	// Go brokers have it (without it a request/response round trip takes 40 ms of Nagle's
	// algorithm meeting delayed ACKs).
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\n", port)
	if cfg.Transport == "ws" {
		wsPort, err := freePort()
		if err != nil {
			return nil, err
		}
		conf += fmt.Sprintf("listener %d 127.0.0.1\nprotocol websockets\n", wsPort)
		u = fmt.Sprintf("ws://127.0.0.1:%d/mqtt", wsPort)
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	p, err := startProcess("mosquitto", bin, "-c", confPath)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := waitTCP(ctx, hostPort(u)); err != nil {
		p.stop()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start mosquitto: %w (%s)", err, p.output())
	}
	return &target{
		name: targetMosquitto, url: u,
		memory: func() (uint64, error) { return rss(p.cmd.Process.Pid) }, memoryKind: "process RSS",
		stop: func(context.Context) error {
			p.stop()
			return os.RemoveAll(dir)
		},
	}, nil
}

// process is a child process of the tool.
type process struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	// err is how the process exited, set before done is closed.
	err error
}

// startProcess starts bin with args; its output is kept for error messages. The process lives
// until stop.
func startProcess(name, bin string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	return runProcess(name, cmd, out)
}

// runProcess starts cmd, which writes its messages to out. A goroutine waits for the process
// to exit and then closes done: it ends with the process, which stop or wait ensure.
func runProcess(name string, cmd *exec.Cmd, out *lockedBuffer) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// wait waits for the process to exit, or kills it when ctx ends first, and returns how it
// exited.
func (p *process) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("killed: %w", ctx.Err())
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written.
func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stop kills the process and waits for it.
func (p *process) stop() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// output returns what the process printed.
func (p *process) output() string { return strings.TrimSpace(p.out.String()) }

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP waits until addr accepts connections, for at most 10 s.
func waitTCP(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// rss returns the resident set size of process pid.
func rss(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("resident set size: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("resident set size: %w", err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("resident set size: no VmRSS in /proc/%d/status", pid)
}
