package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a server or a cluster may take to become ready.
const startTimeout = 30 * time.Second

// pollInterval is the pause between two readiness checks.
const pollInterval = 10 * time.Millisecond

// Standalone starts a redis-server without persistence on a free loopback port and returns its
// address (host:port). The server is killed when the test ends.
func Standalone(t testing.TB) string {
	t.Helper()
	return start(t, "standalone", false).addr
}

// Server is a redis-server that keeps its data in an append-only file synced on every write,
// so that a test can kill it and start it again, on the same address, with every
// acknowledged write.
type Server struct {
	t testing.TB
	s *server
}

// Durable starts a Server. It is killed when the test ends.
func Durable(t testing.TB) *Server {
	t.Helper()
	return &Server{t: t, s: start(t, "durable", false, "--appendonly", "yes", "--appendfsync", "always")}
}

// Addr returns the server's address (host:port).
func (s *Server) Addr() string { return s.s.addr }

// Kill kills the server (SIGKILL) and waits for it to exit.
func (s *Server) Kill() { s.s.stop() }

// Start starts the killed server again on its address and directory, and waits until it
// answers.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.s.restart(s.t); err != nil {
		s.t.Fatalf("redistest: restarting %s: %v", s.s.addr, err)
	}
}

// Cluster starts a Redis Cluster of three masters without replicas or persistence, each on
// free loopback ports, and returns their addresses. It returns once every node reports
// cluster_state:ok and knows the others. The servers are killed when the test ends.
func Cluster(t testing.TB) []string {
	t.Helper()
	const n = 3
	nodes := make([]*server, n)
	for i := range nodes {
		nodes[i] = start(t, fmt.Sprint("cluster-", i), true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	clients := make([]*redis.Client, n)
	for i, s := range nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.addr, Protocol: 2})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, c := range clients {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := c.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			t.Fatalf("redistest: %s: CLUSTER SET-CONFIG-EPOCH: %v", nodes[i].addr, err)
		}
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("redistest: %s: CLUSTER ADDSLOTSRANGE: %v", nodes[i].addr, err)
		}
	}
	for _, s := range nodes[1:] {
		host, port, _ := net.SplitHostPort(s.addr)
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port, s.busPort).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER MEET %s: %v", s.addr, err)
		}
	}
	addrs := make([]string, n)
	for i, s := range nodes {
		addrs[i] = s.addr
	}
	waitFor(t, ctx, "the cluster to form", func() error {
		for i, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return fmt.Errorf("%s: %w", addrs[i], err)
			}
			if !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				return fmt.Errorf("%s: not ready: %q", addrs[i], info)
			}
		}
		return nil
	})
	return addrs
}

// server is one redis-server process.
type server struct {
	addr    string
	busPort int
	cmd     *exec.Cmd
	log     string
	done    chan struct{} // closed when the process has exited
	path    string        // of redis-server
	args    []string
	dir     string
}

// start starts a redis-server on free ports, a Cluster node when cluster is true, retrying a
// few times when it cannot bind its ports, and kills it when the test ends. name names its
// directory.
func start(t testing.TB, name string, cluster bool, extra ...string) *server {
	t.Helper()
	quietRedis.Do(func() { redis.SetLogger(discardLog{}) })
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redistest: redis-server is not installed (scripts/test installs redis-server)")
		}
		t.Skip("redistest: redis-server is not installed; skipping (scripts/test installs it)")
	}
	var lastErr error
	for range 5 {
		s, err := tryStart(t, path, name, cluster, extra)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("redistest: starting redis-server: %v", lastErr)
	return nil
}

func tryStart(t testing.TB, path, name string, cluster bool, extra []string) (*server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	s := &server{
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		busPort: ports[1],
		log:     filepath.Join(dir, "redis.log"),
		done:    make(chan struct{}),
	}
	args := []string{
		"--port", strconv.Itoa(ports[0]),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", s.log,
		"--daemonize", "no",
	}
	if cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(ports[1]),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000",
		)
	}
	s.path, s.args, s.dir = path, append(args, extra...), dir
	if err := s.launch(t); err != nil {
		return nil, err
	}
	t.Cleanup(s.stop)
	return s, nil
}

// restart starts the stopped server again with the same arguments.
func (s *server) restart(t testing.TB) error {
	s.stop()
	s.done = make(chan struct{})
	return s.launch(t)
}

// launch runs the server process and waits until it answers PING.
func (s *server) launch(t testing.TB) error {
	s.cmd = exec.Command(s.path, s.args...)
	s.cmd.Dir = s.dir
	if err := s.cmd.Start(); err != nil {
		return err
	}
	done := s.done
	cmd := s.cmd
	go func() {
		_ = cmd.Wait()
		close(done)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%s exited: %s", s.addr, s.tail())
		case <-ctx.Done():
			s.stop()
			return fmt.Errorf("%s did not answer PING within %v: %s", s.addr, startTimeout, s.tail())
		default:
		}
		if ping(s.addr) == nil {
			return nil
		}
		select {
		case <-s.done:
		case <-time.After(pollInterval):
		}
	}
}

// stop kills the server and waits for it to exit.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// tail returns the end of the server's log.
func (s *server) tail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return err.Error()
	}
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// ping sends PING over a new connection and checks for PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", buf[:n])
	}
	return nil
}

// quietRedis silences go-redis's process-wide logger once: tests that stop servers on
// purpose would fill the output with its dial errors.
var quietRedis sync.Once

type discardLog struct{}

func (discardLog) Printf(context.Context, string, ...any) {}

// portsMu keeps concurrent callers in one process from getting the same ports.
var portsMu sync.Mutex

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor calls check until it returns nil, and fails t with its last error when ctx ends.
func waitFor(t testing.TB, ctx context.Context, what string, check func() error) {
	t.Helper()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redistest: waiting for %s: %v", what, errors.Join(err, ctx.Err()))
		case <-time.After(pollInterval):
		}
	}
}
